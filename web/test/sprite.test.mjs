// The watch page's parser of the sprite's WebVTT track (web/src/sprite.js).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clockTime, cueAt, parseSpriteVtt, parseTime } from '../src/sprite.js';

// What the server writes (crates/transcode/src/poster.rs, `Sprite::vtt`).
const SERVER = `WEBVTT

00:00:00.000 --> 00:00:02.000
sprite.jpg#xywh=0,0,160,90

00:00:02.000 --> 00:00:04.000
sprite.jpg#xywh=160,0,160,90

00:00:04.000 --> 00:00:06.500
sprite.jpg#xywh=0,90,160,90

00:00:06.500 --> 00:00:06.500
sprite.jpg#xywh=160,90,160,90
`;

test('reads the server\'s track: times in seconds and the tile, the last one too', () => {
  assert.deepEqual(parseSpriteVtt(SERVER), [
    { start: 0, end: 2, image: 'sprite.jpg', x: 0, y: 0, w: 160, h: 90 },
    { start: 2, end: 4, image: 'sprite.jpg', x: 160, y: 0, w: 160, h: 90 },
    { start: 4, end: 6.5, image: 'sprite.jpg', x: 0, y: 90, w: 160, h: 90 },
    // The last tile's cue ends where it starts.
    { start: 6.5, end: 6.5, image: 'sprite.jpg', x: 160, y: 90, w: 160, h: 90 },
  ]);
});

test('CRLF, a BOM, cue ids, settings, hours and pixel: are read', () => {
  const text = '\uFEFFWEBVTT - sprite\r\n\r\n1\r\n01:00:01.500 --> 01:00:03.000 align:start\r\nimg/s.jpg#xywh=pixel:320,180,80,45\r\n';
  assert.deepEqual(parseSpriteVtt(text), [{ start: 3601.5, end: 3603, image: 'img/s.jpg', x: 320, y: 180, w: 80, h: 45 }]);
  assert.equal(parseTime('12:34.567'), 754.567);
});

test('malformed cues are skipped, the rest kept', () => {
  const text = `WEBVTT

00:00:00.000 --> 00:00:02.000
sprite.jpg

00:00:02.000 --> 00:00:01.000
sprite.jpg#xywh=0,0,160,90

00:00:02.000 -> 00:00:04.000
sprite.jpg#xywh=0,0,160,90

00:00:02.000 --> 00:00:04.000
sprite.jpg#xywh=0,0,0,90

00:00:02.000 --> 00:00:04.000
sprite.jpg#xywh=1,2,3

00:00:02.000 --> 00:00:04.000
sprite.jpg#xywh=-1,0,160,90

00:61:02.000 --> 00:62:04.000
sprite.jpg#xywh=0,0,160,90

00:00:04.000 --> 00:00:06.000
sprite.jpg#xywh=10,20,30,40
00:00:06.000 --> 00:00:08.000
`;
  assert.deepEqual(parseSpriteVtt(text), [{ start: 4, end: 6, image: 'sprite.jpg', x: 10, y: 20, w: 30, h: 40 }]);
});

test('not WebVTT, not text or too long: no cues', () => {
  assert.deepEqual(parseSpriteVtt('00:00:00.000 --> 00:00:02.000\nsprite.jpg#xywh=0,0,1,1\n'), []);
  assert.deepEqual(parseSpriteVtt('WEBVTTX\n\n00:00:00.000 --> 00:00:02.000\nsprite.jpg#xywh=0,0,1,1\n'), []);
  assert.deepEqual(parseSpriteVtt(null), []);
  assert.deepEqual(parseSpriteVtt(`WEBVTT\n${' '.repeat(1 << 20)}`), []);
  assert.deepEqual(parseSpriteVtt(''), []);
});

test('the number of cues is bounded', () => {
  let text = 'WEBVTT\n';
  for (let i = 0; i < 100; i++) text += `\n00:00:${String(i % 60).padStart(2, '0')}.000 --> 00:00:${String(i % 60).padStart(2, '0')}.500\ns.jpg#xywh=0,0,1,1\n`;
  assert.equal(parseSpriteVtt(text, 10).length, 10);
  assert.equal(parseSpriteVtt(text).length, 100);
});

test('cues come out sorted and cueAt finds the tile for a time', () => {
  const cues = parseSpriteVtt(SERVER.replace('WEBVTT\n', 'WEBVTT\n\n00:00:08.000 --> 00:00:09.000\nsprite.jpg#xywh=320,90,160,90\n'));
  assert.deepEqual(cues.map((c) => c.start), [0, 2, 4, 6.5, 8]);
  const at = (t) => cueAt(cues, t).start;
  assert.equal(at(-1), 0);
  assert.equal(at(0), 0);
  assert.equal(at(1.999), 0);
  assert.equal(at(2), 2);
  assert.equal(at(5), 4);
  assert.equal(at(7), 6.5);
  assert.equal(at(100), 8);
  assert.equal(cueAt([], 1), null);
});

test('clock times', () => {
  assert.equal(clockTime(0), '0:00');
  assert.equal(clockTime(65.9), '1:05');
  assert.equal(clockTime(3725), '1:02:05');
  assert.equal(clockTime(NaN), '0:00');
});
