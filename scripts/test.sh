#!/bin/sh
# Runs every test of the project on a fresh machine: installs what the tests need when it
# is missing (ffmpeg, python3, nginx-rtmp, ffmpeg 9 from imageio-ffmpeg, GStreamer, chromium
# and the browser test's npm packages, s3s-fs here; scripts/fuzz.sh a nightly toolchain and
# cargo-fuzz), then runs the lints, the test suite, the image check and the fuzz targets.
set -eu
cd "$(dirname "$0")/.."

if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi

# ffmpeg publishes and ffprobe checks output; python3 runs the image check's stub service.
if ! command -v ffmpeg >/dev/null 2>&1 || ! command -v ffprobe >/dev/null 2>&1 \
    || ! command -v python3 >/dev/null 2>&1; then
    echo "installing ffmpeg and python3 (the tests publish with ffmpeg, check with ffprobe)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq ffmpeg python3 >/dev/null
fi

# tests/gstreamer.rs publishes with GStreamer: gst-launch-1.0 runs a pipeline of these
# elements, and rtmp2sink needs glib-networking (GIO's TLS backend) for rtmps://. Debian's
# plugins-bad has the H.264 and AAC encoders (openh264enc, voaacenc) as well as rtmp2sink,
# so plugins-ugly and libav are not needed; recommends (ghostscript, imagemagick, ...) are
# left out.
GST_ELEMENTS="videotestsrc audiotestsrc audioconvert openh264enc h264parse voaacenc aacparse flvmux rtmp2sink"
# Succeeds when gst-launch-1.0, an element or glib-networking is missing.
gstreamer_missing() {
    command -v gst-launch-1.0 >/dev/null 2>&1 || return 0
    command -v gst-inspect-1.0 >/dev/null 2>&1 || return 0
    for element in $GST_ELEMENTS; do
        gst-inspect-1.0 --exists "$element" || return 0
    done
    dpkg-query -W -f='${Status}' glib-networking 2>/dev/null | grep -q "ok installed" || return 0
    return 1
}
if gstreamer_missing; then
    echo "installing GStreamer (tests/gstreamer.rs publishes with gst-launch-1.0 and rtmp2sink)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        gstreamer1.0-tools gstreamer1.0-plugins-good gstreamer1.0-plugins-bad glib-networking >/dev/null
fi

# Installs Debian packages whose postinst would start a service ($1, the service; the rest,
# the packages) without starting it: while installing, a policy-rc.d that answers 101
# ("action forbidden") keeps invoke-rc.d and deb-systemd-invoke from starting it (one the
# machine already has is left as it is), and the service is then disabled and stopped, so it
# does not run at boot either. The tests start their own as plain processes on free ports.
install_without_service() {
    service=$1
    shift
    $SUDO apt-get update -qq
    POLICY_RC_D_ADDED=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
        $SUDO chmod 755 /usr/sbin/policy-rc.d
        POLICY_RC_D_ADDED=1
    fi
    INSTALL_STATUS=0
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        "$@" >/dev/null || INSTALL_STATUS=$?
    if [ -n "$POLICY_RC_D_ADDED" ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi
    [ "$INSTALL_STATUS" -eq 0 ] || exit "$INSTALL_STATUS"
    if [ -d /run/systemd/system ]; then
        $SUDO systemctl disable --now "$service.service" >/dev/null 2>&1 || true
    else
        $SUDO update-rc.d "$service" disable >/dev/null 2>&1 || true
        $SUDO invoke-rc.d "$service" stop >/dev/null 2>&1 || true
    fi
}

# tests/nginx_peer.rs runs nginx-rtmp (Debian's nginx with libnginx-mod-rtmp) as a real RTMP
# peer, the target of the relay tests and the anchor of scripts/play_cpu.py.
NGINX_RTMP_MODULE=/usr/lib/nginx/modules/ngx_rtmp_module.so
if [ ! -x /usr/sbin/nginx ] || [ ! -f "$NGINX_RTMP_MODULE" ] \
    || ! dpkg-query -W -f='${Status}' libnginx-mod-rtmp 2>/dev/null | grep -q "ok installed"; then
    echo "installing nginx and libnginx-mod-rtmp (tests/nginx_peer.rs runs nginx-rtmp as a peer)"
    install_without_service nginx nginx libnginx-mod-rtmp
fi

# tests/cluster.rs runs Debian's redis-server as the cluster's Redis.
if ! command -v redis-server >/dev/null 2>&1; then
    echo "installing redis-server (tests/cluster.rs runs it as the cluster's Redis)"
    install_without_service redis-server redis-server
fi

# The Enhanced RTMP tests publish HEVC, AV1, VP9, Opus and multitrack streams, which
# Debian's ffmpeg (5.1) cannot write: they use the static ffmpeg 9.0.2 that PyPI's
# imageio-ffmpeg 0.8.1 ships, installed by pip into a cache directory (no root, the system
# Python untouched: --target skips pip's externally-managed check) and handed to the tests
# as RTMP_SERVER_FFMPEG9. tests/common finds it in the same directory when run directly.
IMAGEIO_FFMPEG_VERSION=0.8.1
IMAGEIO_FFMPEG_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/rtmp-server/imageio-ffmpeg"
# Prints the path of the ffmpeg in $IMAGEIO_FFMPEG_DIR; fails when it is missing, not
# executable or from another imageio-ffmpeg version.
ffmpeg9_path() {
    python3 -c 'import os, sys
sys.path.insert(0, sys.argv[1])
import imageio_ffmpeg
exe = imageio_ffmpeg.get_ffmpeg_exe()
if imageio_ffmpeg.__version__ != sys.argv[2] or not os.access(exe, os.X_OK):
    sys.exit(1)
print(exe)' "$IMAGEIO_FFMPEG_DIR" "$IMAGEIO_FFMPEG_VERSION" 2>/dev/null
}
if ! RTMP_SERVER_FFMPEG9=$(ffmpeg9_path); then
    if ! python3 -m pip --version >/dev/null 2>&1; then
        echo "installing python3-pip (pip installs ffmpeg 9 for the Enhanced RTMP tests)"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-pip >/dev/null
    fi
    echo "installing imageio-ffmpeg $IMAGEIO_FFMPEG_VERSION (ffmpeg 9) into $IMAGEIO_FFMPEG_DIR"
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check --upgrade \
        --target "$IMAGEIO_FFMPEG_DIR" "imageio-ffmpeg==$IMAGEIO_FFMPEG_VERSION"
    RTMP_SERVER_FFMPEG9=$(ffmpeg9_path) \
        || { echo "imageio-ffmpeg installed no usable ffmpeg in $IMAGEIO_FFMPEG_DIR" >&2; exit 1; }
fi
export RTMP_SERVER_FFMPEG9

# tests/browser.rs plays HLS with hls.js, and HTTP-FLV and WebSocket-FLV with mpegts.js, in
# Debian's Chromium, driven by playwright-core; npm installs the packages as
# tests/browser/package-lock.json pins them (none downloads a browser). Node.js and npm
# come with the machine.
if [ ! -x /usr/bin/chromium ]; then
    echo "installing chromium (the browser test plays HLS in it)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
# A node_modules from before a package was added lacks that package's folder.
if [ ! -d tests/browser/node_modules/hls.js ] || [ ! -d tests/browser/node_modules/mpegts.js ] \
    || [ ! -d tests/browser/node_modules/playwright-core ]; then
    command -v npm >/dev/null 2>&1 || { echo "npm not found: install Node.js 20 or later with npm" >&2; exit 1; }
    echo "installing hls.js, mpegts.js and playwright-core (npm ci in tests/browser)"
    (cd tests/browser && npm ci --no-audit --no-fund >/dev/null)
fi

# rustup installs cargo under ~/.cargo/bin, which a non-login shell may not have on PATH.
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    PATH="$HOME/.cargo/bin:$PATH"
    export PATH
fi
command -v cargo >/dev/null 2>&1 || { echo "cargo not found: install Rust (https://rustup.rs)" >&2; exit 1; }

# tests/object_storage.rs uploads to a real S3-compatible server: s3s-fs from the Rust
# registry (buckets as folders), installed into cargo's bin folder (~/.cargo/bin), where
# the tests find it when it is not on PATH. --locked builds it with the versions its
# release was tested with; should that ever fail to resolve, the newest compatible ones.
S3S_FS_VERSION=0.14.1
if ! command -v s3s-fs >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/s3s-fs" ]; then
    echo "installing s3s-fs $S3S_FS_VERSION (tests/object_storage.rs stores HLS in it)"
    cargo install s3s-fs --version "$S3S_FS_VERSION" --features binary --locked --quiet \
        || cargo install s3s-fs --version "$S3S_FS_VERSION" --features binary --quiet
fi

# The whole workspace: the server and the load tool (tools/load).
cargo fmt --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
# The shipped artefact: the static release binary alone in an empty root, as the image runs it.
scripts/check-image.sh
# Every parser and the remux pipeline under libFuzzer for a short, bounded time.
scripts/fuzz.sh 8
