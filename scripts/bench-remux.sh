#!/bin/sh
# Remux speed of rtmp-server against FFmpeg on the same input: FLV in, MPEG-TS HLS out.
#
#   scripts/bench-remux.sh [SECONDS_OF_MEDIA]
#
# Builds a longer FLV from testdata/flv/h264_aac.flv (looped, stream copy), then times
# `rtmp-server remux` and `ffmpeg -c copy -f hls` on it (whole processes, files written),
# and prints MB/s of FLV input for both and their ratio. Then runs the criterion benchmark,
# which measures the remux alone, in memory (`benches/remux.rs`).
set -eu
cd "$(dirname "$0")/.."
seconds=${1:-300}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet
bin=target/x86_64-unknown-linux-gnu/release/rtmp-server
loops=$(( (seconds + 9) / 10 - 1 ))
ffmpeg -hide_banner -loglevel error -stream_loop "$loops" -i testdata/flv/h264_aac.flv \
    -c copy -f flv "$work/input.flv"
bytes=$(stat -c %s "$work/input.flv")

# Best of three runs of a command, in seconds.
best_of_three() {
    best=""
    for _ in 1 2 3; do
        rm -rf "$work/out" && mkdir -p "$work/out"
        start=$(date +%s%N)
        "$@" >/dev/null 2>&1
        end=$(date +%s%N)
        t=$(( end - start ))
        if [ -z "$best" ] || [ "$t" -lt "$best" ]; then best=$t; fi
    done
    echo "$best"
}

ours=$(best_of_three "$bin" remux "$work/input.flv" "$work/out")
theirs=$(best_of_three ffmpeg -nostdin -y -i "$work/input.flv" -c copy -f hls -hls_time 2 \
    -hls_list_size 0 "$work/out/index.m3u8")

awk -v b="$bytes" -v o="$ours" -v t="$theirs" -v s="$seconds" 'BEGIN {
    mb = b / 1e6
    printf "input: %.1f MB of FLV, %d s of H.264/AAC\n", mb, s
    printf "rtmp-server remux:      %8.1f ms  %8.1f MB/s\n", o / 1e6, mb / (o / 1e9)
    printf "ffmpeg -c copy -f hls:  %8.1f ms  %8.1f MB/s\n", t / 1e6, mb / (t / 1e9)
    printf "rtmp-server is %.1fx faster\n", t / o
}'

cargo bench --bench remux
