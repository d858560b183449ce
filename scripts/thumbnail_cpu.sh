#!/bin/sh
# Measures what a thumbnail costs the server with keyframes as an encoder sends them: the
# release binary (built first unless --no-build) on free ports, ffmpeg publishing testsrc2
# with libx264 (-preset veryfast -g 60, constant bit rate; with --grain, noise added for a
# camera-like picture), thumbnails at width 320 asked every 5.2 s with thumbnail.interval 5
# (so each request decodes), then the server's own figure: rtmp_server_thumbnail_decode_seconds
# (CPU seconds per decode, with its scaling and encoding), sum over count, and the worker
# thread's CPU ticks from /proc/PID/task. Prints figures, asserts nothing.
#
#   scripts/thumbnail_cpu.sh [--no-build] [--size 1920x1080] [--rate 6M] [--grain] [--count 10]
#
# Every process it starts is ended by its pid; its temporary folder is removed.
set -eu
cd "$(dirname "$0")/.."

SIZE=1920x1080 RATE=6M GRAIN=0 COUNT=10 BUILD=1
while [ $# -gt 0 ]; do
    case $1 in
        --no-build) BUILD=0 ;;
        --size) SIZE=$2; shift ;;
        --rate) RATE=$2; shift ;;
        --grain) GRAIN=1 ;;
        --count) COUNT=$2; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
[ "$BUILD" = 1 ] && cargo build --release --quiet
BIN=target/x86_64-unknown-linux-gnu/release/rtmp-server

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
RTMP_PORT=$(free_port)
HTTP_PORT=$(free_port)
DIR=$(mktemp -d)
SERVER=
PUBLISHER=
cleanup() {
    [ -n "$PUBLISHER" ] && kill "$PUBLISHER" 2>/dev/null || true
    [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

"$BIN" --rtmp-port "$RTMP_PORT" --http-port "$HTTP_PORT" --http-mediaroot "$DIR/media" \
    --thumbnail-interval 5 >"$DIR/server.log" 2>&1 &
SERVER=$!
FILTER=null
[ "$GRAIN" = 1 ] && FILTER="noise=alls=25:allf=t"
SECONDS_NEEDED=$((COUNT * 6 + 10))
ffmpeg -hide_banner -loglevel error -re -f lavfi -i "testsrc2=size=$SIZE:rate=30" -vf "$FILTER" \
    -c:v libx264 -preset veryfast -b:v "$RATE" -maxrate "$RATE" -bufsize 2M -g 60 \
    -pix_fmt yuv420p -t "$SECONDS_NEEDED" -f flv "rtmp://127.0.0.1:$RTMP_PORT/live/cam" \
    >"$DIR/ffmpeg.log" 2>&1 &
PUBLISHER=$!
sleep 4
i=0
while [ "$i" -lt "$COUNT" ]; do
    curl -s -o /dev/null "http://127.0.0.1:$HTTP_PORT/live/cam/thumbnail.jpg?width=320"
    sleep 5.2
    i=$((i + 1))
done
METRICS=$(curl -s "http://127.0.0.1:$HTTP_PORT/metrics")
SUM=$(echo "$METRICS" | awk '/^rtmp_server_thumbnail_decode_seconds_sum/ {print $2}')
N=$(echo "$METRICS" | awk '/^rtmp_server_thumbnail_decode_seconds_count/ {print $2}')
TICKS=0
for task in /proc/"$SERVER"/task/*; do
    case $(cat "$task/comm") in
        thumbnail*) TICKS=$((TICKS + $(awk '{print $14 + $15}' "$task/stat"))) ;;
    esac
done
echo "$SIZE at $RATE (grain $GRAIN): $N decodes, $(awk -v s="$SUM" -v n="$N" 'BEGIN {printf "%.1f", 1000 * s / n}') ms CPU each;" \
    "worker threads $TICKS ticks of 1/$(getconf CLK_TCK) s;" \
    "one thumbnail every 10 s per stream: $(awk -v s="$SUM" -v n="$N" 'BEGIN {printf "%.3f", 100 * s / n / 10}')% of a core"
