#!/bin/sh
# Runs every test of the project on a fresh machine: installs what the tests need (ffmpeg,
# the real encoder and validator they use) when it is missing, then runs the lints and the
# test suite.
set -eu
cd "$(dirname "$0")/.."

if ! command -v ffmpeg >/dev/null 2>&1 || ! command -v ffprobe >/dev/null 2>&1; then
    echo "installing ffmpeg (the tests publish with it and check output with ffprobe)"
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq ffmpeg >/dev/null
fi

# rustup installs cargo under ~/.cargo/bin, which a non-login shell may not have on PATH.
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    PATH="$HOME/.cargo/bin:$PATH"
    export PATH
fi
command -v cargo >/dev/null 2>&1 || { echo "cargo not found: install Rust (https://rustup.rs)" >&2; exit 1; }

cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
# The shipped artefact: the static release binary alone in an empty root, as the image runs it.
scripts/check-image.sh
# Every parser and the remux pipeline under libFuzzer for a short, bounded time.
scripts/fuzz.sh 20
