// The JSON API as the pages use it (docs/http-api.md). The session is the `vshare_session`
// cookie, sent by the browser on every same-origin request.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Calls the API; returns parsed JSON (null for an empty body) or throws ApiError. */
export async function api(method, path, body) {
  const init = { method, headers: {}, credentials: 'same-origin' };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, `the server cannot be reached (${e.message})`);
  }
  const text = await res.text();
  if (!res.ok) {
    let message = text.trim();
    try {
      const j = JSON.parse(text);
      message = j.error || j.message || message;
    } catch {
      // plain-text error
    }
    throw new ApiError(res.status, message || `${res.status} ${res.statusText}`);
  }
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** The signed-in user ({user, stream_key, rtmp_url}), or null. */
export async function me() {
  try {
    return await api('GET', '/api/v1/me');
  } catch (e) {
    if (e.status === 401 || e.status === 403 || e.status === 404) return null;
    throw e;
  }
}

/** Sends the browser to the sign-in page, to come back here after. */
export function toSignIn() {
  const next = location.pathname + location.search;
  location.assign(`/signin?next=${encodeURIComponent(next)}`);
}
