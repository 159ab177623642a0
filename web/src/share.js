// The Share dialog: send a video's link and attributes to phone numbers through the server
// (SMS text, TLV, XML or WAP Push), open the phone's own messaging app with an `sms:` link, or
// copy the link. Text and WAP Push go as one SMS with the short link unless "Full records" is
// ticked; the dialog shows the SMS count the server computes for the chosen form
// (`share-preview`) before sending.
import { api } from './api.js';
import { h, $, copyText } from './ui.js';

const FORMS = [
  ['text', 'Text SMS'],
  ['tlv', 'TLV (binary SMS)'],
  ['xml', 'XML SMS'],
  ['wap-si', 'WAP Push (Service Indication)'],
];

/** Splits what the user typed into numbers (commas, spaces, semicolons or new lines). */
export function parseNumbers(text) {
  return text.split(/[\s,;]+/).map((n) => n.replace(/[()\-.]/g, '')).filter((n) => n.length > 0);
}

function dialog() {
  let d = $('#share-dialog');
  if (d) return d;
  d = h('dialog', { id: 'share-dialog', 'aria-labelledby': 'share-title' },
    h('form', { method: 'dialog', id: 'share-form' },
      h('h2', { id: 'share-title' }, 'Share'),
      h('p', { class: 'muted small', id: 'share-what' }),
      h('label', { for: 'share-numbers' }, 'Phone numbers'),
      h('textarea', { id: 'share-numbers', rows: '2', inputmode: 'tel', autocomplete: 'tel',
        placeholder: '+8613900139000 (several: separate with commas)' }),
      h('label', { for: 'share-as' }, 'Message form'),
      h('select', { id: 'share-as' }, FORMS.map(([v, t]) => h('option', { value: v }, t))),
      h('label', { class: 'row' },
        h('input', { type: 'checkbox', id: 'share-full' }),
        ' Full records (every attribute, in several SMS)'),
      h('p', { id: 'share-parts', class: 'small muted', 'aria-live': 'polite' }),
      h('p', { id: 'share-result', role: 'status', class: 'small' }),
      h('div', { class: 'row gap-top' },
        h('button', { type: 'button', id: 'share-send', class: 'primary' }, 'Send'),
        h('a', { id: 'share-sms', class: 'button', href: 'sms:' }, 'Messages app'),
        h('button', { type: 'button', id: 'share-copy' }, 'Copy link'),
        h('button', { value: 'cancel', id: 'share-close' }, 'Close'))));
  document.body.append(d);
  return d;
}

/**
 * The link to give out: the watch page, with a signed query (`exp`, `sig`) when the owner asks
 * (private videos need it; it expires). Others get the page's own address.
 */
export async function shareLink(videoId) {
  const page = new URL(`/watch/${encodeURIComponent(videoId)}`, location.href);
  try {
    const r = await api('GET', `/api/v1/videos/${encodeURIComponent(videoId)}/link`);
    if (r && r.query) page.search = r.query;
  } catch {
    // not the owner: the plain page
  }
  return page.href;
}

/** The text form and the RFC 5724 `sms:` link from the server, for these numbers. */
async function shareText(videoId, numbers, full) {
  const q = new URLSearchParams({ form: 'text', full: String(full) });
  if (numbers.length) q.set('to', numbers.join(','));
  return api('GET', `/api/v1/videos/${encodeURIComponent(videoId)}/share-text?${q}`);
}

const ALPHABETS = { gsm7: 'GSM 7-bit', ucs2: 'UCS-2', '8bit': '8-bit data' };

/** "1 SMS (GSM 7-bit) per number" from the server's preview of a share. */
export function describeParts(p) {
  const n = p.parts;
  return `${n} SMS${n === 1 ? '' : ' parts'} (${ALPHABETS[p.alphabet] || p.alphabet}) per number`;
}

/** Describes the server's answer to a share, one line per number. */
function describe(res, numbers) {
  const list = res?.results;
  if (!Array.isArray(list)) return `Sent to ${numbers.join(', ')}.`;
  const parts = res.parts || 1;
  const pending = new Set(['queued', 'sending', 'unconfirmed']);
  return list.map((r) => {
    if (r.ok) return `${r.number}: sent (${parts} message${parts === 1 ? '' : 's'})`;
    if (pending.has(r.state)) return `${r.number}: on its way (the server keeps trying)`;
    return `${r.number}: not sent — ${r.error || r.state}`;
  }).join('\n');
}

/** Opens the dialog for a video. */
export async function openShare(videoId, title = '') {
  const d = dialog();
  const result = $('#share-result');
  result.textContent = '';
  result.className = 'small';
  $('#share-what').textContent = `${title || 'Video'} · ${videoId}`;
  const link = await shareLink(videoId);
  const smsLink = $('#share-sms');
  smsLink.href = `sms:?body=${encodeURIComponent(link)}`;
  const full = () => $('#share-full').checked;
  const updateSms = async () => {
    const numbers = parseNumbers($('#share-numbers').value);
    try {
      smsLink.href = (await shareText(videoId, numbers, full())).sms_uri;
    } catch {
      // a number the server does not accept yet (still typing): keep the last link
    }
  };
  const parts = $('#share-parts');
  const updateParts = async () => {
    const q = new URLSearchParams({ form: $('#share-as').value, full: String(full()) });
    parts.textContent = 'Counting SMS…';
    delete parts.dataset.parts;
    try {
      const p = await api('GET',
        `/api/v1/videos/${encodeURIComponent(videoId)}/share-preview?${q}`);
      parts.textContent = describeParts(p);
      parts.dataset.parts = String(p.parts);
    } catch (e) {
      parts.textContent = `Cannot send in this form: ${e.message}`;
    }
  };
  $('#share-as').onchange = updateParts;
  $('#share-full').onchange = () => {
    updateParts();
    updateSms();
  };
  updateParts();
  updateSms();
  let typing = null;
  $('#share-numbers').oninput = () => {
    clearTimeout(typing);
    typing = setTimeout(updateSms, 300);
  };
  $('#share-copy').onclick = () => copyText(link);
  $('#share-send').onclick = async () => {
    const numbers = parseNumbers($('#share-numbers').value);
    if (numbers.length === 0) {
      result.textContent = 'Enter at least one phone number.';
      result.className = 'small notice bad';
      return;
    }
    $('#share-send').disabled = true;
    result.textContent = 'Sending…';
    result.className = 'small';
    try {
      const res = await api('POST', `/api/v1/videos/${encodeURIComponent(videoId)}/share`,
        { numbers, form: $('#share-as').value, full: full() });
      result.textContent = describe(res, numbers);
      result.className = 'small notice ok';
      result.dataset.sent = 'true';
    } catch (e) {
      result.textContent = `Not sent: ${e.message}`;
      result.className = 'small notice bad';
    } finally {
      $('#share-send').disabled = false;
    }
  };
  if (!d.open) d.showModal();
}
