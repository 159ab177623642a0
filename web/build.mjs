// Builds web/dist, the files `vshare serve` embeds: the pages and modules of src/ as they are
// (plain ES modules, no bundler needed) and hls.js from node_modules. No network, no CDN.
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(fileURLToPath(import.meta.url));
const src = join(root, 'src');
const dist = join(root, 'dist');
const hls = join(root, 'node_modules', 'hls.js', 'dist', 'hls.min.mjs');

if (!existsSync(hls)) {
  console.error('web build: node_modules/hls.js is missing; run `npm ci` in web/ first');
  process.exit(1);
}

rmSync(dist, { recursive: true, force: true });
mkdirSync(join(dist, 'app', 'vendor'), { recursive: true });

// Pages are served at /, /signin, … and everything else under /app/.
let files = 0;
for (const name of readdirSync(src, { recursive: true })) {
  const from = join(src, name);
  if (!statSync(from).isFile()) continue;
  const to = name.endsWith('.html') ? join(dist, name) : join(dist, 'app', name);
  mkdirSync(dirname(to), { recursive: true });
  cpSync(from, to);
  files++;
}
cpSync(hls, join(dist, 'app', 'vendor', 'hls.mjs'));
const version = JSON.parse(
  (await import('node:fs')).readFileSync(join(root, 'node_modules', 'hls.js', 'package.json'), 'utf8'),
).version;
writeFileSync(join(dist, 'app', 'vendor', 'VERSIONS.txt'), `hls.js ${version}\n`);
console.log(`web build: ${files} files from src/ and hls.js ${version} → ${relative(process.cwd(), dist) || dist}`);
