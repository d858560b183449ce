#!/bin/sh
# Builds the cargo-fuzz targets in fuzz/ (AddressSanitizer, debug assertions and overflow
# checks on) and runs each for a bounded time from the seed corpora in fuzz/corpus/, as
# many at once as there are cores. Fails if any target finds a crash, a panic, a leak, a
# time-out or memory over the limit; the input that did it is saved under
# fuzz/artifacts/<target>/ and its path printed.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#   SECONDS_PER_TARGET  how long each target runs (default 20)
#   TARGET              run only these (default: every target in fuzz/Cargo.toml)
# Environment: FUZZ_JOBS (targets run at once; default: the number of cores),
#   FUZZ_ARGS (extra libFuzzer options, e.g. "-only_ascii=1").
#
# Needs a nightly toolchain (sanitizers); installs cargo-fuzz when it is missing. New
# inputs the fuzzer finds go to fuzz/work/<target>/, not to the committed seeds.
set -eu
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET=${1:-20}
[ $# -gt 0 ] && shift
TARGETS=${*:-"handshake chunk amf0 session flv flv_mux remux ll_query codec tls_session recording s3_playlist thumbnail"}
JOBS=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}

if ! cargo +nightly --version >/dev/null 2>&1 && command -v rustup >/dev/null 2>&1; then
    echo "installing a nightly toolchain (the sanitizers need one)"
    rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz.sh: the fuzz targets need a nightly toolchain (rustup toolchain install nightly)" >&2
    exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

# Largest input per target: room for the seeds (a whole handshake, the captured publish,
# a second of FLV), small enough to keep executions fast.
max_len() {
    case $1 in
        handshake) echo 4096 ;;
        amf0) echo 8192 ;;
        chunk | session) echo 16384 ;;
        flv | remux) echo 65536 ;;
        ll_query) echo 1024 ;;
        codec) echo 4096 ;;
        thumbnail) echo 16384 ;;
        *) echo 4096 ;;
    esac
}

# cargo-fuzz passes --target and its own RUSTFLAGS, which replace the crt-static flags of
# .cargo/config.toml (AddressSanitizer cannot link statically); the check below makes sure
# the sanitizer and the coverage instrumentation really are in.
cargo +nightly fuzz build --debug-assertions --sanitizer address
# cargo builds into CARGO_TARGET_DIR when it is set, else the fuzz workspace's own target.
BIN=${CARGO_TARGET_DIR:-fuzz/target}/x86_64-unknown-linux-gnu/release
# asan.module_ctor exists only where code was instrumented by AddressSanitizer, the
# __sancov_cntrs section only where code has coverage counters.
if command -v nm >/dev/null 2>&1; then
    for target in $TARGETS; do
        symbols=$(nm "$BIN/$target")
        if ! echo "$symbols" | grep -q ' asan\.module_ctor$' ||
            ! echo "$symbols" | grep -q ' __start___sancov_cntrs$'; then
            echo "fuzz.sh: $BIN/$target lacks AddressSanitizer or coverage instrumentation" >&2
            exit 1
        fi
    done
else
    echo "fuzz.sh: nm not found; not checking the instrumentation" >&2
fi

LOGS=fuzz/target/fuzz-logs
mkdir -p "$LOGS"
# detect_odr_violation=0: as cargo fuzz run sets it (Rust duplicates some globals).
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_odr_violation=0"

run_one() {
    target=$1
    mkdir -p "fuzz/work/$target" "fuzz/artifacts/$target"
    # shellcheck disable=SC2086 # FUZZ_ARGS is a list of options.
    "$BIN/$target" "fuzz/work/$target" "fuzz/corpus/$target" \
        -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 \
        -max_len="$(max_len "$target")" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="fuzz/artifacts/$target/" ${FUZZ_ARGS:-} \
        >"$LOGS/$target.log" 2>&1
}

failed=""
running=0
pids=""
for target in $TARGETS; do
    echo "fuzzing $target for ${SECONDS_PER_TARGET}s"
    run_one "$target" &
    pids="$pids $!:$target"
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then
        for entry in $pids; do
            if ! wait "${entry%%:*}"; then failed="$failed ${entry#*:}"; fi
        done
        pids=""
        running=0
    fi
done
for entry in $pids; do
    if ! wait "${entry%%:*}"; then failed="$failed ${entry#*:}"; fi
done

# One line per target: executions, coverage (edges, features), corpus, peak memory.
for target in $TARGETS; do
    log="$LOGS/$target.log"
    # Plain runs end with stat:: lines; -fork runs only with their progress lines.
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    [ -n "$runs" ] || runs=$(grep -E '^#[0-9]+' "$log" | tail -1 | sed -E 's/^#([0-9]+).*/\1/')
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log")
    cov=$(grep -E '^#[0-9]+' "$log" | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [^ ]+')
    echo "$target: ${runs:-?} runs, ${cov:-no coverage line}, peak ${rss:-?} MB"
done
if [ -n "$failed" ]; then
    for target in $failed; do
        log="$LOGS/$target.log"
        echo "--- $target failed ($log):" >&2
        grep -m1 -A6 -E 'panicked at|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)' "$log" >&2 || tail -20 "$log" >&2
        grep -E 'Test unit written to' "$log" >&2 || true
    done
    echo "fuzz.sh: crashes in:$failed (replay: $BIN/TARGET ARTIFACT)" >&2
    exit 1
fi
echo "fuzz.sh: no crash in $(echo "$TARGETS" | wc -w) targets"
