#!/usr/bin/env python3
"""Measures glass-to-glass latency: capture at the encoder to display in a browser.

    scripts/glass.py [--binary PATH] [--playlist index.m3u8] [--seconds 60] [--warmup 10]
                     [--runs 1] [--low-latency] [--hls-config JSON] [--audio sine|none]
                     [--hls-time 2] [--server-arg=--OPTION=VALUE ...] [--json FILE]

It starts the server (the release binary, built when --binary is not given) on free
loopback ports, publishes to it with scripts/stamp_publisher.py (frames stamped with the
wall-clock time they are handed to ffmpeg; x264 veryfast zerolatency, keyframe every 2 s,
no B-frames), waits until the playlist lists three segments (a viewer joining a running
stream), then plays the playlist with hls.js in headless Chromium
(tests/browser/play.mjs --stamps) for --seconds, --runs times one after the other, each
viewer joining after a random wait of up to one segment: hls.js keeps the distance to the
live edge it joined at, so where in the segment cycle a viewer joins sets its latency. Every presented frame's stamp is read back
from a canvas; glass-to-glass is the frame's expected display time
(requestVideoFrameCallback expectedDisplayTime, on the wall clock) minus its stamp. Same
machine, same clock.

Printed, per run and over all runs: median, p90, p99, min and max of glass-to-glass over
the frames presented after --warmup seconds of playback, the sample count, stalls; per run
also time to first frame, hls.js's own estimate of its distance to the live edge, and
frames dropped.

    scripts/glass.py --encoder [--seconds 30] [--warmup 10] [--audio sine|none]

measures the encoder alone instead: the publisher's ffmpeg writes FLV to a pipe, a second
ffmpeg decodes it (one thread, no B-frames, so it holds no frame back) and the stamps are
read from the decoded frames as they come out: capture to encode, mux and decode, without
the server, the network or a player.

Figures are printed, never asserted. Only the Python standard library is used.
"""

import argparse
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.dont_write_bytecode = True  # no __pycache__ left in scripts/
import stamp_publisher  # noqa: E402

BROWSER = os.path.join(ROOT, "tests/browser")
RELEASE = os.path.join(ROOT, "target/x86_64-unknown-linux-gnu/release/rtmp-server")
# How long the stream gets to list three segments, and the browser to start and end on top
# of the playing time, before the run is given up.
STARTUP_S = 60
PLAYER_MARGIN_S = 90


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def wait_segments(url, count, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if fetch(url).count("#EXTINF") >= count:
                return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def kill_group(proc, sig=signal.SIGKILL):
    """Signals the process group `proc` leads (it was started in a session of its own)."""
    if proc is not None and proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def kill_chromium(pid_file):
    """Ends Chromium's process group if play.mjs could not (it was killed itself)."""
    try:
        with open(pid_file) as f:
            pid = int(f.read().strip())
        with open(f"/proc/{pid}/comm") as f:
            if "chrom" not in f.read():
                return
        os.killpg(pid, signal.SIGKILL)
    except (OSError, ValueError):
        pass


def ensure_browser():
    if not os.path.isdir(os.path.join(BROWSER, "node_modules")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=BROWSER, check=True,
                       stdout=subprocess.DEVNULL)
    if not os.path.exists("/usr/bin/chromium"):
        print("installing chromium", file=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True,
                       stdout=subprocess.DEVNULL, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))


def play(args, url, pid_file):
    """One viewer: play.mjs on `url` for --seconds; its result line, parsed."""
    cmd = ["node", "play.mjs", "--url", url, "--seconds", str(args.seconds), "--stamps",
           "--warmup", str(args.warmup), "--pid-file", pid_file, "--hls-config", args.hls_config]
    if args.low_latency:
        cmd.append("--low-latency")
    # The browser profile goes in the run's work folder, removed with it.
    player = subprocess.Popen(cmd, cwd=BROWSER, stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, TMPDIR=os.path.dirname(pid_file)),
                              start_new_session=True)
    try:
        out, _ = player.communicate(timeout=args.seconds + PLAYER_MARGIN_S)
    finally:
        kill_group(player, signal.SIGTERM)
        kill_chromium(pid_file)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"play.mjs printed no result (exit {player.returncode})")
    return json.loads(lines[-1])


def measure_browser(args, report):
    """Runs the server and the publisher, then --runs viewers one after the other, each
    joining at a random point of the segment cycle; calls `report` with each result."""
    binary = args.binary
    if binary is None:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
        binary = RELEASE
    ensure_browser()
    work = tempfile.mkdtemp(prefix="glass-")
    rtmp, http = free_port(), free_port()
    server = publisher = None
    pid_file = os.path.join(work, "chromium.pid")
    try:
        server = subprocess.Popen(
            [binary, "serve", "--bind", "127.0.0.1", "--rtmp-port", str(rtmp), "--http-port", str(http),
             "--media-root", os.path.join(work, "media"), "--hls-time", str(args.hls_time)]
            + args.server_arg,
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "server.log"), "w"),
            start_new_session=True)
        base = f"http://127.0.0.1:{http}"
        deadline = time.time() + STARTUP_S
        while time.time() < deadline:
            try:
                fetch(base + "/healthz")
                break
            except OSError:
                time.sleep(0.1)
        key = "glass"
        publish_s = STARTUP_S + args.runs * (args.seconds + args.hls_time + PLAYER_MARGIN_S)
        publisher = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "scripts/stamp_publisher.py"),
             f"rtmp://127.0.0.1:{rtmp}/live/{key}", "--seconds", str(publish_s), "--audio", args.audio],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "publisher.log"), "w"),
            start_new_session=True)
        url = f"{base}/live/{key}/{args.playlist}"
        if not wait_segments(url, 3, STARTUP_S):
            with open(os.path.join(work, "server.log")) as f:
                log = f.read()[-4000:]
            with open(os.path.join(work, "publisher.log")) as f:
                log += f.read()[-4000:]
            raise RuntimeError(f"{url} did not list three segments within {STARTUP_S} s\n{log}")
        for run in range(args.runs):
            # Where in the segment cycle a viewer joins decides how far behind it plays.
            time.sleep(random.uniform(0, args.hls_time))
            report(run, play(args, url, pid_file))
    finally:
        kill_group(publisher)
        kill_group(server, signal.SIGTERM)
        subprocess.run(["rm", "-rf", work], check=False)


def print_run(run, r):
    if not r.get("started"):
        print(f"run {run + 1}: did not play: {r.get('failures')}", flush=True)
        return
    g = (r.get("glass") or {}).get("ms")
    lat = r.get("latency_s") or {}
    frames = r.get("frames") or {}
    text = (f"median {g['median']}  p90 {g['p90']}  p99 {g['p99']}  min {g['min']}  max {g['max']}  "
            f"({g['n']} frames)") if g else f"no stamp read: {r['glass']['unreadable']}"
    print(f"run {run + 1}: glass-to-glass ms: {text}; stalls {r['stalls']}, fatal {len(r['fatal'])}, "
          f"first frame {r['first_frame_ms']} ms, hls.js latency {lat.get('median')} s, "
          f"dropped {frames.get('dropped')}/{frames.get('decoded')}", flush=True)
    if r.get("failures"):
        print(f"    failures: {r['failures']}", flush=True)


def measure_encoder(args):
    """Capture → x264 → FLV → a decoding ffmpeg, stamps read from its output."""
    enc = subprocess.Popen(stamp_publisher.ffmpeg_command("pipe:1", args.seconds, args.audio),
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    dec = subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-threads", "1",
         "-fflags", "nobuffer", "-flags", "low_delay", "-analyzeduration", "0", "-probesize", "32", "-f", "flv", "-i", "-",
         "-map", "0:v", "-threads", "1", "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        stdin=enc.stdout, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    enc.stdout.close()
    ages = []

    def read():
        size = stamp_publisher.WIDTH * stamp_publisher.HEIGHT
        while True:
            frame = dec.stdout.read(size)
            if len(frame) < size:
                return
            now = time.time() * 1000
            stamp = stamp_publisher.decode(frame)
            if stamp is not None:
                ages.append((now, (int(now) - stamp) % stamp_publisher.STAMP_MOD))

    reader = threading.Thread(target=read)
    reader.start()
    started = time.time() * 1000
    try:
        stamp_publisher.feed(enc, args.seconds)
    finally:
        kill_group(enc)
        reader.join(timeout=30)
        kill_group(dec)
    return [age for at, age in ages if at >= started + args.warmup * 1000]


def quantiles(values):
    """median, p90, p99 (nearest rank), min and max."""
    s = sorted(values)

    def q(p):
        return s[min(len(s) - 1, max(0, math.ceil(p * len(s)) - 1))]

    return {"n": len(s), "median": q(0.5), "p90": q(0.9), "p99": q(0.99), "min": s[0], "max": s[-1]}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", help="the server binary (default: build and use the release one)")
    p.add_argument("--playlist", default="index.m3u8", help="playlist name under /live/KEY/")
    p.add_argument("--seconds", type=float, default=60, help="playing time")
    p.add_argument("--warmup", type=float, default=10, help="seconds of each run not counted")
    p.add_argument("--runs", type=int, default=1, help="viewers, one after the other")
    p.add_argument("--low-latency", action="store_true", help="hls.js lowLatencyMode: true")
    p.add_argument("--hls-config", default="{}", help="more hls.js config, as JSON")
    p.add_argument("--audio", choices=["sine", "none"], default="sine")
    p.add_argument("--hls-time", type=float, default=2, help="the server's hls.time")
    p.add_argument("--server-arg", action="append", default=[],
                   help="one more server argument, e.g. --server-arg=--hls-list-size=6")
    p.add_argument("--json", help="write play.mjs's full result here")
    p.add_argument("--encoder", action="store_true", help="measure the encoder alone")
    args = p.parse_args()
    if args.encoder:
        ages = measure_encoder(args)
        print(f"encoder alone (x264 veryfast zerolatency, FLV, decoded by ffmpeg), audio {args.audio}, "
              f"{args.seconds:g} s, first {args.warmup:g} s not counted")
        if not ages:
            print("no stamped frame decoded")
            return 1
        q = quantiles(ages)
        print(f"capture to decoded ms: median {q['median']}  p90 {q['p90']}  p99 {q['p99']}  "
              f"min {q['min']}  max {q['max']}  ({q['n']} frames)")
        return 0
    cfg = {"lowLatencyMode": args.low_latency, **json.loads(args.hls_config)}
    print(f"playlist {args.playlist}, hls.js {json.dumps(cfg)}, hls.time {args.hls_time:g} s, "
          f"keyframe every {stamp_publisher.GOP / stamp_publisher.FPS:g} s, audio {args.audio}; "
          f"{args.runs} x {args.seconds:g} s played, first {args.warmup:g} s of each not counted",
          flush=True)
    results = []

    def report(run, r):
        results.append(r)
        print_run(run, r)

    measure_browser(args, report)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f)
    ages = [ms for r in results for t, ms in ((r.get("glass") or {}).get("samples") or [])
            if t >= (r.get("first_frame_ms") or 0) / 1000 + args.warmup]
    stalls = sum(r.get("stalls", 0) for r in results)
    fatal = sum(len(r.get("fatal", [])) for r in results)
    if ages:
        q = quantiles(ages)
        print(f"all runs: glass-to-glass ms: median {q['median']}  p90 {q['p90']}  p99 {q['p99']}  "
              f"min {q['min']}  max {q['max']}  ({q['n']} frames); stalls {stalls}, fatal {fatal}")
    return 0 if ages and all(r.get("ok") for r in results) else 1

if __name__ == "__main__":
    sys.exit(main())
