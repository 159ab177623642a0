// The library: the signed-in user's videos with their attribute data; delete, make private or
// public (private videos are reached only through signed, expiring links), copy the link,
// share.
import { api, me, toSignIn } from './api.js';
import { nav } from './nav.js';
import { openShare, shareLink } from './share.js';
import { h, $, attributesList, copyText, toast, videoItem } from './ui.js';

async function copyLink(v) {
  await copyText(await shareLink(v.id));
}

function item(v) {
  const isPublic = (v.visibility || 'public') === 'public';
  const actions = h('div', { class: 'row' },
    h('button', { type: 'button', class: 'share', onclick: () => openShare(v.id, v.title) }, 'Share'),
    h('button', { type: 'button', class: 'copy-link', onclick: () => copyLink(v) }, 'Copy link'),
    h('button', {
      type: 'button', class: 'visibility',
      onclick: async (e) => {
        e.target.disabled = true;
        try {
          await api('PATCH', `/api/v1/videos/${encodeURIComponent(v.id)}`, { visibility: isPublic ? 'private' : 'public' });
          toast(isPublic ? 'Now private' : 'Now public');
          await load();
        } catch (ex) {
          toast(`Not changed: ${ex.message}`);
          e.target.disabled = false;
        }
      },
    }, isPublic ? 'Make private' : 'Make public'),
    h('button', {
      type: 'button', class: 'danger delete',
      onclick: async (e) => {
        if (!confirm(`Delete “${v.title || v.id}” and its recordings? This cannot be undone.`)) return;
        e.target.disabled = true;
        try {
          await api('DELETE', `/api/v1/videos/${encodeURIComponent(v.id)}`);
          toast('Deleted');
          await load();
        } catch (ex) {
          toast(`Not deleted: ${ex.message}`);
          e.target.disabled = false;
        }
      },
    }, 'Delete'));
  const details = h('details', {}, h('summary', { class: 'small' }, `Attribute data (${v.attributes.length})`),
    attributesList(v.attributes));
  return videoItem(v, [details, actions]);
}

async function load() {
  let videos;
  try {
    videos = await api('GET', '/api/v1/me/videos');
  } catch (e) {
    if (e.status === 401) return toSignIn();
    $('#error').textContent = `Cannot load your videos: ${e.message}`;
    $('#error').hidden = false;
    return;
  }
  document.body.dataset.count = String(videos.length);
  $('#videos').replaceChildren(...(videos.length
    ? videos.map(item)
    : [h('li', { class: 'muted' }, 'No videos yet. ', h('a', { href: '/studio' }, 'Go live'), ' to make one.')]));
}

async function main() {
  nav('library');
  if (!(await me().catch(() => null))) return toSignIn();
  await load();
}

main();
