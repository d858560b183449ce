#!/bin/sh
# Proves what Dockerfile.scratch ships without a Docker engine: builds the release binary,
# checks it is fully static, copies it alone into an empty root (plus an /etc/hosts, which
# a container runtime provides), runs it there under chroot as the image's non-root user,
# publishes a stream to it with ffmpeg, fetches the playlist and a segment over HTTP, and
# has it validate the stream key against a stub stream-service reached by host name.
set -eu
cd "$(dirname "$0")/.."

cargo build --release --locked --quiet
bin=target/x86_64-unknown-linux-gnu/release/rtmp-server
echo "binary: $bin, $(stat -c %s "$bin") bytes"

# 1. Static: no program interpreter, no shared libraries.
if readelf -l "$bin" | grep -q INTERP; then
    echo "FAIL: $bin has a program interpreter (dynamically linked)"; exit 1
fi
if readelf -d "$bin" 2>/dev/null | grep -q NEEDED; then
    echo "FAIL: $bin needs shared libraries:"; readelf -d "$bin" | grep NEEDED; exit 1
fi
echo "static: no interpreter, no shared libraries"

work=$(mktemp -d)
server_pid=""
stub_pid=""
ffmpeg_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    [ -n "$stub_pid" ] && kill "$stub_pid" 2>/dev/null || true
    [ -n "$ffmpeg_pid" ] && kill "$ffmpeg_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
rtmp_port=$(free_port)
http_port=$(free_port)
stub_port=$(free_port)

# 2. The stub stream-service: a static file server where /api/streams/imagekey exists.
mkdir -p "$work/stub/api/streams"
echo '{"key":"imagekey","active":true}' > "$work/stub/api/streams/imagekey"
python3 -m http.server "$stub_port" --bind 127.0.0.1 --directory "$work/stub" \
    2> "$work/stub.log" >/dev/null &
stub_pid=$!

# 3. The image's file system: the binary, a writable media folder, /etc/hosts.
root="$work/root"
mkdir -p "$root/etc" "$root/media"
cp "$bin" "$root/rtmp-server"
printf '127.0.0.1 localhost\n127.0.0.1 stream-service\n' > "$root/etc/hosts"
# Both exec the binary in place, so the background job's pid is the server's own.
if [ "$(id -u)" -eq 0 ]; then
    chown 65534:65534 "$root/media"
    in_root="chroot --userspec=65534:65534 $root"
else
    in_root="unshare --user --map-root-user chroot $root"
fi
[ "$(find "$root" -type f | wc -l)" -eq 2 ] || { echo "FAIL: extra files in the root"; exit 1; }

RUST_LOG=info $in_root /rtmp-server --bind 127.0.0.1 --rtmp-port "$rtmp_port" \
    --http-port "$http_port" --media-root /media \
    --stream-service "http://stream-service:$stub_port" > "$work/server.log" 2>&1 &
server_pid=$!

fetch() {
    python3 - "$1" <<'PY'
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=10) as r:
        sys.stdout.buffer.write(r.read())
except Exception as e:
    print(e, file=sys.stderr); sys.exit(1)
PY
}

# 4. The image's HEALTHCHECK, run the same way.
i=0
until $in_root /rtmp-server healthcheck --http-port "$http_port" 2>/dev/null; do
    i=$((i + 1)); [ "$i" -lt 100 ] || { echo "FAIL: healthcheck"; cat "$work/server.log"; exit 1; }
    sleep 0.1
done
echo "healthcheck: ok"

# 5. A key the stream-service knows streams; the playlist and a segment are served.
ffmpeg -hide_banner -nostdin -loglevel error -re -i testdata/flv/h264_aac.flv -c copy \
    -f flv "rtmp://127.0.0.1:$rtmp_port/live/imagekey" &
ffmpeg_pid=$!
i=0
until fetch "http://127.0.0.1:$http_port/live/imagekey/index.m3u8" > "$work/index.m3u8" 2>/dev/null \
    && grep -q '\.ts$' "$work/index.m3u8"; do
    i=$((i + 1)); [ "$i" -lt 300 ] || { echo "FAIL: no playlist"; cat "$work/server.log"; exit 1; }
    sleep 0.1
done
segment=$(grep '\.ts$' "$work/index.m3u8" | head -n 1)
fetch "http://127.0.0.1:$http_port/live/imagekey/$segment" > "$work/segment.ts"
ffprobe -v error -show_entries stream=codec_name -of csv=p=0 "$work/segment.ts" | sort | tr '\n' ' ' \
    | grep -q "aac h264" || { echo "FAIL: segment is not H.264/AAC"; exit 1; }
# Served from memory first; the disk writer follows.
i=0
until [ -f "$root/media/live/imagekey/$segment" ]; do
    i=$((i + 1)); [ "$i" -lt 100 ] || { echo "FAIL: segment not written in /media"; exit 1; }
    sleep 0.1
done
echo "publish: playlist and segment served, segment on disk"
grep -q 'GET /api/streams/imagekey' "$work/stub.log" \
    || { echo "FAIL: the stream-service was not asked by host name"; cat "$work/server.log"; exit 1; }
echo "stream-service: reached as http://stream-service:$stub_port"
wait "$ffmpeg_pid"
ffmpeg_pid=""

# 6. A key it does not know is refused.
if ffmpeg -hide_banner -nostdin -loglevel quiet -i testdata/flv/audio_only.flv -c copy \
    -f flv "rtmp://127.0.0.1:$rtmp_port/live/unknownkey"; then
    echo "FAIL: an unknown key was accepted"; exit 1
fi
echo "unknown key: refused"

# 7. docker stop: SIGTERM, exit 0.
kill -TERM "$server_pid"
if wait "$server_pid"; then server_pid=""; else echo "FAIL: exit status $? on SIGTERM"; exit 1; fi
echo "SIGTERM: clean exit"
echo "image check passed"
