#!/bin/sh
# Runs every test of the project on a fresh machine: installs what the tests need when it
# is missing (ffmpeg, python3, chromium and the browser test's npm packages here;
# scripts/fuzz.sh a nightly toolchain and cargo-fuzz), then runs the lints, the test suite,
# the image check and the fuzz targets.
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

# tests/browser.rs plays HLS with hls.js in Debian's Chromium, driven by playwright-core;
# npm installs both packages as tests/browser/package-lock.json pins them (neither
# downloads a browser). Node.js and npm come with the machine.
if [ ! -x /usr/bin/chromium ]; then
    echo "installing chromium (the browser test plays HLS in it)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
if [ ! -d tests/browser/node_modules ]; then
    command -v npm >/dev/null 2>&1 || { echo "npm not found: install Node.js 20 or later with npm" >&2; exit 1; }
    echo "installing hls.js and playwright-core (npm ci in tests/browser)"
    (cd tests/browser && npm ci --no-audit --no-fund >/dev/null)
fi

# rustup installs cargo under ~/.cargo/bin, which a non-login shell may not have on PATH.
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    PATH="$HOME/.cargo/bin:$PATH"
    export PATH
fi
command -v cargo >/dev/null 2>&1 || { echo "cargo not found: install Rust (https://rustup.rs)" >&2; exit 1; }

# The whole workspace: the server and the load tool (tools/load).
cargo fmt --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
# The shipped artefact: the static release binary alone in an empty root, as the image runs it.
scripts/check-image.sh
# Every parser and the remux pipeline under libFuzzer for a short, bounded time.
scripts/fuzz.sh 20
