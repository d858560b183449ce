#!/usr/bin/env python3
"""Measures what a DVR window (`hls.dvr_window`) costs the server in memory: the RSS of one
server while one publish fills the window, without and with the window.

    scripts/dvr_rss.py [--windows 0,120] [--seconds 150] [--every 10] [--media-dir /dev/shm]
                       [--json FILE] [--no-build]

It makes (once, with the system's ffmpeg, as scripts/tls_cpu.py does) a 60 s 1280x720 30 fps
H.264 file (x264 veryfast, 3000 kbit/s, a keyframe every 2 s) with 128 kbit/s AAC. Then,
for each DVR window in turn, it starts the release binary (`cargo build --release` first,
unless --no-build) on its defaults (`hls.time` 2, both outputs) with `--hls-dvr-window N`,
free ports and a media root in a temporary folder (or under --media-dir), publishes the
file in a loop to `live/dvr` (`ffmpeg -re -stream_loop -1 -i FILE -c copy -f flv`), and
every --every seconds for --seconds records: the server's RSS (VmRSS from
/proc/PID/status), the segment bytes its windows hold (`segment_memory_bytes` of
/api/server), and how many segments `index.m3u8` and `llhls.m3u8` list. It prints a table
per window and the figures as JSON. Only the Python standard library is used (and ffmpeg);
figures are printed, never asserted.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load  # noqa: E402  (the shared measuring helpers)
import tls_cpu  # noqa: E402  (the 720p30 3 Mbit/s source file)

KEY = "dvr"


def listed(url):
    """Segments a media playlist lists now."""
    try:
        return load.fetch(url).count("#EXTINF:")
    except Exception:
        return 0


def segment_memory(http):
    try:
        return json.loads(load.fetch(f"http://127.0.0.1:{http}/api/server"))["segment_memory_bytes"]
    except Exception:
        return None


def run(window, args, path):
    work = tempfile.mkdtemp(prefix="dvr-rss-", dir=args.media_dir)
    rtmp, http = load.free_port(), load.free_port()
    log = open(os.path.join(work, "server.log"), "w")
    server = subprocess.Popen(
        [load.BIN, "--bind", "127.0.0.1", "--rtmp-port", str(rtmp), "--http-port", str(http),
         "--media-root", os.path.join(work, "media"), "--log-level", "warn",
         "--hls-dvr-window", str(window)],
        stdout=subprocess.DEVNULL, stderr=log)
    publisher = None
    samples = []
    try:
        load.wait_http(f"http://127.0.0.1:{http}/healthz")
        base = f"http://127.0.0.1:{http}/live/{KEY}"
        publisher = tls_cpu.publish(f"rtmp://127.0.0.1:{rtmp}/live/{KEY}", path)
        start = time.time()
        for i in range(args.seconds // args.every + 1):
            wait = start + i * args.every - time.time()
            if wait > 0:
                time.sleep(wait)
            if publisher.poll() is not None:
                raise RuntimeError(f"the publisher stopped: {publisher.stderr.read()}")
            sample = {
                "t": round(time.time() - start, 1),
                "rss_mib": round(load.rss_bytes([server.pid]) / 2**20, 1),
                "segment_memory_mib": None,
                "index_listed": listed(f"{base}/index.m3u8"),
                "llhls_listed": listed(f"{base}/llhls.m3u8"),
            }
            held = segment_memory(http)
            if held is not None:
                sample["segment_memory_mib"] = round(held / 2**20, 1)
            samples.append(sample)
            print(f"  dvr_window {window:>4} s  t {sample['t']:>6.1f} s  RSS {sample['rss_mib']:>6.1f} MiB"
                  f"  segments in memory {sample['segment_memory_mib']} MiB"
                  f"  listed index {sample['index_listed']:>3}  llhls {sample['llhls_listed']:>3}",
                  flush=True)
    finally:
        if publisher is not None:
            publisher.terminate()
            try:
                publisher.wait(timeout=10)
            except subprocess.TimeoutExpired:
                publisher.kill()
        load.stop(server, signal.SIGTERM, work)
    return samples


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", default="0,120", help="DVR windows in seconds, one run each")
    parser.add_argument("--seconds", type=int, default=150)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--media-dir", default=None, help="where the media roots go (/dev/shm)")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--bin", "rtmp-server"], cwd=load.ROOT,
                       check=True)
    path = tls_cpu.make_media()
    results = {}
    for window in [int(w) for w in args.windows.split(",")]:
        print(f"dvr_window {window} s:", flush=True)
        results[window] = run(window, args, path)
    print("\n t (s) " + "".join(f"| RSS MiB, dvr {w} s | listed (index/llhls) " for w in results))
    rows = max(len(s) for s in results.values())
    for i in range(rows):
        line = f"{results[next(iter(results))][i]['t']:>6} "
        for samples in results.values():
            s = samples[i] if i < len(samples) else None
            line += (f"| {s['rss_mib']:>17} | {s['index_listed']:>3} / {s['llhls_listed']:<3}           "
                     if s else "|" + " " * 42)
        print(line)
    figures = {"machine": {"cpus": os.cpu_count(), "load": load.loadavg()},
               "runs": {str(w): s for w, s in results.items()}}
    print(json.dumps(figures))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)


if __name__ == "__main__":
    main()
