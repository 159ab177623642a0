#!/usr/bin/env bash
# Installs what vshare needs to build and run on Debian 12: FFmpeg's libraries (and the ffmpeg
# CLI for test clips and ffprobe), a C toolchain for bindgen. With --test also the independent
# tools the tests check our bytes with. Idempotent: installs only what is missing.
set -euo pipefail

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

sudo_cmd=()
[ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)

apt_packages=(build-essential pkg-config clang libclang-dev curl ca-certificates
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev
  libavfilter-dev libavdevice-dev ffmpeg)
if [ "$want_test" = 1 ]; then
  # pebble: Let's Encrypt's ACME test server, for the TLS test's ACME certificate.
  apt_packages+=(pebble)
  # nginx: the HTTP cache in front of live servers (crates/cli/tests/cdn_cache.rs).
  apt_packages+=(nginx)
  apt_packages+=(libwbxml2-utils tshark gammu python3-gammu python3-pip postgresql kannel kannel-extras fonts-dejavu-core iproute2 nftables)
  # The browser tests: Debian's Chromium, driven by playwright-core (from web/, below).
  apt_packages+=(chromium)
  # GStreamer publishes in the timestamp corpus (its flvmux clamps B-frame DTS); stress-ng loads
  # a core for scripts/test-under-load.sh.
  apt_packages+=(gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
    gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav stress-ng)
fi
# Node and npm build the browser pages (web/); any Node ≥ 18 will do, so keep one already there.
command -v npm >/dev/null 2>&1 || apt_packages+=(nodejs npm)

missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -qq
  echo "wireshark-common wireshark-common/install-setuid boolean false" | "${sudo_cmd[@]}" debconf-set-selections || true
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "$want_test" = 1 ] && [ -f "$(dirname "$0")/requirements-test.txt" ]; then
  python3 -m pip install -q --disable-pip-version-check -r "$(dirname "$0")/requirements-test.txt" 2>/dev/null \
    || python3 -m pip install -q --disable-pip-version-check --break-system-packages -r "$(dirname "$0")/requirements-test.txt"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: no Rust toolchain; installing rustup (stable)"
  curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi
rustc_minor=$(rustc --version | sed -E 's/rustc 1\.([0-9]+).*/\1/')
if [ "$rustc_minor" -lt 95 ]; then
  echo "setup: Rust $(rustc --version) is too old; vshare needs 1.95 or newer (rustup update)" >&2
  exit 1
fi

# An independent S3 server for the object-storage test (about 150 s to build once).
if [ "$want_test" = 1 ] && ! command -v s3s-fs >/dev/null 2>&1; then
  echo "setup: installing s3s-fs"
  cargo install s3s-fs@0.14.1 --features binary --locked --quiet
fi

# Garage, a distributed S3-compatible store, for the multi-process test (about 11 minutes to build
# once on two cores; an installed one is kept).
if [ "$want_test" = 1 ] && ! command -v garage >/dev/null 2>&1; then
  echo "setup: installing garage (builds for several minutes)"
  cargo install garage@2.5.0 --locked --quiet
fi

# The browser pages: npm installs hls.js (and playwright-core, for the browser tests) exactly as
# web/package-lock.json says, and the build writes web/dist, which `vshare serve` embeds.
web="$(cd "$(dirname "$0")/../web" && pwd)"
if [ ! -f "$web/node_modules/.package-lock.json" ] || [ "$web/package-lock.json" -nt "$web/node_modules/.package-lock.json" ]; then
  echo "setup: npm ci in web/"
  (cd "$web" && npm ci --no-audit --no-fund --loglevel=error)
fi
(cd "$web" && npm run --silent build)
