#!/bin/sh
# Offline remux speed: `rtmp-server remux` (TS and CMAF) against copying the same file and
# against FFmpeg, whole processes writing their files.
#
#   scripts/bench-remux.sh [SECONDS_OF_MEDIA] [SOURCE.flv]
#
# Builds a long FLV by looping SOURCE (default testdata/flv/h264_720p30_3m.flv: 720p30,
# 3.15 Mb/s, H.264/AAC; 600 s by default), on tmpfs (/dev/shm) so the disk is out of the
# figures, then times, best of five: `cp` of the file into the same folder,
# `rtmp-server remux` to TS, `rtmp-server remux --format cmaf`, and
# `ffmpeg -c copy -f hls`. Prints each, MB/s of FLV input, and the ratios to cp and to
# ffmpeg. Then runs the criterion benchmark, which measures the remux alone, in memory
# (`benches/remux.rs`).
set -eu
cd "$(dirname "$0")/.."
seconds=${1:-600}
source=${2:-testdata/flv/h264_720p30_3m.flv}
base=/dev/shm
[ -d "$base" ] && [ -w "$base" ] || base=${TMPDIR:-/tmp}
work=$(mktemp -d "$base/bench-remux.XXXXXX")
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet
bin=target/x86_64-unknown-linux-gnu/release/rtmp-server
length=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$source")
loops=$(awk -v s="$seconds" -v l="$length" 'BEGIN { n = int(s / l + 0.999) - 1; print (n < 0 ? 0 : n) }')
ffmpeg -hide_banner -loglevel error -stream_loop "$loops" -i "$source" -t "$seconds" \
    -c copy -f flv "$work/input.flv"
bytes=$(stat -c %s "$work/input.flv")

# Best of five runs of a command, in nanoseconds, each into an empty $work/out.
best_of_five() {
    best=""
    for _ in 1 2 3 4 5; do
        rm -rf "$work/out" && mkdir -p "$work/out"
        sync
        start=$(date +%s%N)
        "$@" >/dev/null 2>&1
        end=$(date +%s%N)
        t=$(( end - start ))
        if [ -z "$best" ] || [ "$t" -lt "$best" ]; then best=$t; fi
    done
    echo "$best"
}

copy=$(best_of_five cp "$work/input.flv" "$work/out/copy.flv")
ts=$(best_of_five "$bin" remux "$work/input.flv" "$work/out")
cmaf=$(best_of_five "$bin" remux --format cmaf "$work/input.flv" "$work/out")
ffmpeg=$(best_of_five ffmpeg -nostdin -y -i "$work/input.flv" -c copy -f hls -hls_time 2 \
    -hls_list_size 0 "$work/out/index.m3u8")

awk -v b="$bytes" -v c="$copy" -v ts="$ts" -v cm="$cmaf" -v f="$ffmpeg" -v s="$seconds" \
    -v dir="$base" 'BEGIN {
    mb = b / 1e6
    printf "input: %.1f MB of FLV, %d s of H.264/AAC, on %s\n", mb, s, dir
    printf "cp:                         %8.1f ms  %8.1f MB/s\n", c / 1e6, mb / (c / 1e9)
    printf "rtmp-server remux (TS):     %8.1f ms  %8.1f MB/s  %.2fx cp  %.2fx ffmpeg\n", ts / 1e6, mb / (ts / 1e9), ts / c, ts / f
    printf "rtmp-server remux (CMAF):   %8.1f ms  %8.1f MB/s  %.2fx cp  %.2fx ffmpeg\n", cm / 1e6, mb / (cm / 1e9), cm / c, cm / f
    printf "ffmpeg -c copy -f hls:      %8.1f ms  %8.1f MB/s  %.2fx cp\n", f / 1e6, mb / (f / 1e9), f / c
}'

[ "${BENCH_CRITERION:-1}" = 0 ] || cargo bench --bench remux
