// The landing page: what is live now and the latest public videos.
import { api } from './api.js';
import { nav } from './nav.js';
import { h, $, videoItem } from './ui.js';

async function main() {
  nav('home');
  let videos = [];
  try {
    videos = await api('GET', '/api/v1/videos');
  } catch (e) {
    $('#recent').replaceChildren(h('li', { class: 'notice bad' }, `Could not load videos: ${e.message}`));
    $('#live').replaceChildren();
    return;
  }
  const live = videos.filter((v) => v.state === 'live');
  const recent = videos.filter((v) => v.state !== 'live').slice(0, 20);
  $('#live').replaceChildren(...(live.length ? live.map((v) => videoItem(v)) : [h('li', { class: 'muted' }, 'Nobody is live right now.')]));
  $('#recent').replaceChildren(...(recent.length ? recent.map((v) => videoItem(v)) : [h('li', { class: 'muted' }, 'No videos yet.')]));
}

main();
