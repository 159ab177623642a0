#!/usr/bin/env bash
# Ladder benchmark: vshare-transcode (FFmpeg's libraries in process) against the ffmpeg CLI
# doing the same ladder with the same encoder settings, side by side in one run.
#
#   bench/ladder.sh    # 30 s sources, best of 3; LADDER_SECONDS=60 LADDER_REPEAT=5 for more
#
# Case A: a 720p30 source into the default preset (720p is the source, passed through; 480p and
#         240p are encoded, AAC 128k/64k).
# Case B: a 1080p30 source into the default preset (720p, 480p, 240p all encoded).
# Both sides: bilinear scaling, libx264 veryfast/zerolatency, no B-frames, VBV maxrate=bufsize=
# bitrate, no scene-cut keyframes, an IDR on each source keyframe (every 2 s), AAC 48 kHz stereo.
# Rungs run in parallel in vshare-transcode (one scoped thread per rung per picture).
# Reported (best of LADDER_REPEAT interleaved runs): ×realtime for each, the ratio (ours/CLI, >1 = we are faster), CPU seconds and peak
# RSS, and our CPU per rung (one-rung run minus a decode-only run), as % of one core.
set -euo pipefail
cd "$(dirname "$0")/.."
LEN=${LADDER_SECONDS:-30}
REPEAT=${LADDER_REPEAT:-3}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
command -v ffmpeg >/dev/null || { echo "ffmpeg is needed (apt-get install ffmpeg)" >&2; exit 1; }

cargo build --release -q -p vshare-transcode --example ladder_bench
BIN=target/release/examples/ladder_bench

source_flv() { # name size
  ffmpeg -v error -y -f lavfi -i "testsrc2=s=$2:r=30:d=$LEN,noise=alls=8:allf=t" \
    -f lavfi -i "sine=f=440:r=48000:d=$LEN" -ac 2 \
    -c:v libx264 -preset veryfast -b:v 4M -g 60 -keyint_min 60 -sc_threshold 0 -pix_fmt yuv420p \
    -c:a aac -b:a 128k -ar 48000 -f flv "$W/$1.flv"
}

# Runs a command under /usr/bin/time; sets WALL CPU RSS_MB.
measure() {
  /usr/bin/time -f "%e %U %S %M" -o "$W/time" "$@" >"$W/out" 2>&1 || { cat "$W/out" >&2; exit 1; }
  read -r WALL USER SYS RSS <"$W/time"
  CPU=$(awk -v u="$USER" -v s="$SYS" 'BEGIN{printf "%.2f", u+s}')
  RSS_MB=$(awk -v r="$RSS" 'BEGIN{printf "%.0f", r/1024}')
}

# ffmpeg CLI ladder: args after the source are rungs "W:H:VBITRATE:ABITRATE".
cli() {
  local src=$1; shift
  local n=$#
  local fc="[0:v]split=$n" maps=() i=0
  for r in "$@"; do fc+="[s$i]"; i=$((i+1)); done
  i=0
  for r in "$@"; do
    IFS=: read -r w h vb ab <<<"$r"
    fc+=";[s$i]scale=$w:$h:flags=bilinear,format=yuv420p[o$i]"
    maps+=(-map "[o$i]" -c:v libx264 -preset veryfast -tune zerolatency -b:v "$vb" -maxrate "$vb"
      -bufsize "$vb" -bf 0 -forced-idr 1 -x264-params scenecut=0:open-gop=0:keyint=infinite
      -force_key_frames "expr:gte(t,n_forced*2)" -map 0:a -c:a aac -b:a "$ab" -ar 48000 -ac 2
      -f null /dev/null)
    i=$((i+1))
  done
  ffmpeg -v error -y -i "$src" -filter_complex "$fc" "${maps[@]}"
}

# best_of N label cmd...: runs the command N times; keeps the fastest run's WALL CPU RSS_MB.
best() {
  measure "$@"
  if [ -z "${BEST_WALL:-}" ] || awk -v a="$WALL" -v b="$BEST_WALL" 'BEGIN{exit !(a<b)}'; then
    BEST_WALL=$WALL BEST_CPU=$CPU BEST_RSS=$RSS_MB
  fi
}

run_case() { # label source rungs-for-cli... (ours runs the default preset)
  local label=$1 src=$2; shift 2
  local ow="" oc="" orss="" cw="" cc="" crss=""
  local k
  # Interleaved (ours, CLI, ours, CLI, ...) so load from elsewhere hits both alike; best of N.
  for k in $(seq "$REPEAT"); do
    BEST_WALL=$ow BEST_CPU=$oc BEST_RSS=$orss
    best "$BIN" "$src" default
    ow=$BEST_WALL oc=$BEST_CPU orss=$BEST_RSS
    [ "$k" = 1 ] && grep rendition "$W/out" | sed 's/^/    /'
    BEST_WALL=$cw BEST_CPU=$cc BEST_RSS=$crss
    best bash -c "$(declare -f cli); cli \"\$@\"" cli "$src" "$@"
    cw=$BEST_WALL cc=$BEST_CPU crss=$BEST_RSS
  done
  awk -v l="$label" -v m="$LEN" -v ow="$ow" -v cw="$cw" -v oc="$oc" \
      -v cc="$cc" -v orss="$orss" -v crss="$crss" -v n="$REPEAT" 'BEGIN{
    printf "  %s (best of %d)\n", l, n
    printf "    vshare-transcode: %6.2fx realtime  wall %6.2f s  cpu %7.2f s  peak RSS %5d MB\n", m/ow, ow, oc, orss
    printf "    ffmpeg CLI:       %6.2fx realtime  wall %6.2f s  cpu %7.2f s  peak RSS %5d MB\n", m/cw, cw, cc, crss
    printf "    ratio (ours/CLI speed): %.2f\n", cw/ow }'
}

per_rung() { # source rung-names...
  local src=$1; shift
  measure "$BIN" "$src" default no-rung
  local base=$CPU
  awk -v c="$base" -v m="$LEN" 'BEGIN{printf "    decoding only (no rung): cpu %6.2f s = %5.1f%% of one core\n", c, c/m*100}'
  for name in "$@"; do
    measure "$BIN" "$src" default "$name"
    awk -v n="$name" -v c="$CPU" -v b="$base" -v m="$LEN" 'BEGIN{
      printf "    rung %-5s cpu %6.2f s above decoding = %5.1f%% of one core at real time\n", n, c-b, (c-b)/m*100 }'
  done
}

echo "ladder benchmark: $LEN s sources, $(nproc) cores, $(ffmpeg -version | head -1 | cut -d' ' -f1-3)"
source_flv src720 1280x720
source_flv src1080 1920x1080
run_case "A: 720p30 source -> 480p + 240p (720p passthrough)" "$W/src720.flv" \
  854:480:1000k:128k 426:240:300k:64k
per_rung "$W/src720.flv" 480p 240p
run_case "B: 1080p30 source -> 720p + 480p + 240p" "$W/src1080.flv" \
  1280:720:2500k:128k 854:480:1000k:128k 426:240:300k:64k
per_rung "$W/src1080.flv" 720p 480p 240p
