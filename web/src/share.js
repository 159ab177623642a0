// The Share dialog: send a video's link and attributes to phone numbers through the server
// (SMS text, TLV, XML or WAP Push), open the phone's own messaging app with an `sms:` link, or
// copy the link.
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
      h('p', { id: 'share-result', role: 'status', class: 'small' }),
      h('div', { class: 'row gap-top' },
        h('button', { type: 'button', id: 'share-send', class: 'primary' }, 'Send'),
        h('a', { id: 'share-sms', class: 'button', href: 'sms:' }, 'Messages app'),
        h('button', { type: 'button', id: 'share-copy' }, 'Copy link'),
        h('button', { value: 'cancel', id: 'share-close' }, 'Close'))));
  document.body.append(d);
  return d;
}

/** The link to give out: the signed link for private videos, else the watch page. */
async function shareLink(videoId) {
  try {
    const r = await api('GET', `/api/v1/videos/${encodeURIComponent(videoId)}/link`);
    return typeof r === 'string' ? r : r.url || r.link;
  } catch {
    return new URL(`/watch/${encodeURIComponent(videoId)}`, location.href).href;
  }
}

async function shareText(videoId) {
  const r = await api('GET', `/api/v1/videos/${encodeURIComponent(videoId)}/share-text`);
  return typeof r === 'string' ? r : r.text;
}

/** Describes the server's answer to a share, one line per number. */
function describe(res, numbers) {
  const list = Array.isArray(res) ? res : res?.results || res?.sent || null;
  if (!Array.isArray(list)) return `Sent to ${numbers.join(', ')}.`;
  return list.map((r) => {
    const to = r.number || r.to || r.address || '';
    if (r.error) return `${to}: failed — ${r.error}`;
    const parts = r.parts ?? r.message_ids?.length;
    return `${to}: sent${parts ? ` (${parts} part${parts === 1 ? '' : 's'})` : ''}`;
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
  shareText(videoId).then((text) => {
    const numbers = parseNumbers($('#share-numbers').value);
    smsLink.href = `sms:${numbers.join(',')}?body=${encodeURIComponent(text || link)}`;
    smsLink.dataset.body = text || link;
  }).catch(() => {});
  $('#share-numbers').oninput = () => {
    const body = smsLink.dataset.body || link;
    smsLink.href = `sms:${parseNumbers($('#share-numbers').value).join(',')}?body=${encodeURIComponent(body)}`;
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
        { numbers, form: $('#share-as').value });
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
