// Sign in, or create an account (then signed in at once); back to where the user came from.
import { api, me } from './api.js';
import { nav } from './nav.js';
import { $ } from './ui.js';

/** Only same-origin paths are followed after sign-in. */
function nextPath() {
  const next = new URLSearchParams(location.search).get('next') || '/studio';
  return next.startsWith('/') && !next.startsWith('//') ? next : '/studio';
}

let mode = 'signin';

function setMode(m) {
  mode = m;
  $('#tab-signin').setAttribute('aria-selected', String(m === 'signin'));
  $('#tab-signup').setAttribute('aria-selected', String(m === 'signup'));
  $('#form-title').textContent = m === 'signin' ? 'Sign in' : 'Create an account';
  $('#submit').textContent = m === 'signin' ? 'Sign in' : 'Create account';
  $('#password').autocomplete = m === 'signin' ? 'current-password' : 'new-password';
  $('#password-hint').hidden = m === 'signin';
  $('#form-error').hidden = true;
}

async function submit(e) {
  e.preventDefault();
  const username = $('#username').value.trim();
  const password = $('#password').value;
  const err = $('#form-error');
  err.hidden = true;
  $('#submit').disabled = true;
  try {
    if (mode === 'signup') await api('POST', '/api/v1/accounts', { username, password });
    await api('POST', '/api/v1/session', { username, password });
    location.assign(nextPath());
  } catch (ex) {
    err.textContent = ex.status === 401 ? 'Wrong user name or password.' : ex.message;
    err.hidden = false;
  } finally {
    $('#submit').disabled = false;
  }
}

async function main() {
  nav('signin');
  $('#tab-signin').addEventListener('click', () => setMode('signin'));
  $('#tab-signup').addEventListener('click', () => setMode('signup'));
  $('#account-form').addEventListener('submit', submit);
  if (new URLSearchParams(location.search).get('mode') === 'signup') setMode('signup');
  if (await me().catch(() => null)) location.assign(nextPath());
}

main();
