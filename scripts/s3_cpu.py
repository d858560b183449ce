#!/usr/bin/env python3
"""Measures what object storage costs: the server's CPU per stream with `s3.bucket` unset
and set (uploading to s3s-fs on loopback), in one run, alternating; and how soon a segment
listed on the node is in the bucket's playlist.

    scripts/s3_cpu.py [--streams 8] [--seconds 40] [--warmup 10] [--rounds 2]
                      [--media-dir /dev/shm] [--json FILE] [--no-build]

The source is the 60 s 1280x720 30 fps 3 Mbit/s H.264 + AAC file of scripts/tls_cpu.py.
Each round starts the release binary on its defaults (free ports, a media root in a
temporary folder) once without object storage and once with it (a fresh s3s-fs on a free
loopback port, its root in a temporary folder; started and killed by its pid), publishes the
file to N streams (`ffmpeg -re -stream_loop -1 -c copy`), waits --warmup seconds, then
measures the server's CPU (utime+stime of /proc/PID/stat) over --seconds as ms of CPU per
second of wall time per stream, the uploader thread's alone (`s3-uploader` in
/proc/PID/task), and the machine's (/proc/stat, which includes s3s-fs and the publishers). With object storage on it reads `rtmp_server_s3_playlist_lag_seconds` (from a
playlist version on the node to its copy in the bucket) from /metrics: its count, mean, and
the median interpolated within the histogram's buckets. s3s-fs is found on PATH or in
~/.cargo/bin (scripts/test.sh installs it). Only the Python standard library is used;
figures are printed, never asserted.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load  # noqa: E402  (the shared measuring helpers)
import tls_cpu  # noqa: E402  (the 720p30 3 Mbit/s source file)

LAG = "rtmp_server_s3_playlist_lag_seconds"


def s3s_fs():
    found = shutil.which("s3s-fs")
    if found:
        return found
    home = os.path.join(os.path.expanduser("~"), ".cargo", "bin", "s3s-fs")
    if os.access(home, os.X_OK):
        return home
    sys.exit("s3s-fs not found: run scripts/test.sh, which installs it")


def lag_histogram(metrics):
    """(count, sum, [(upper bound, cumulative count)]) of the lag histogram."""
    count, total, buckets = 0.0, 0.0, []
    for line in metrics.splitlines():
        if line.startswith(LAG + "_count "):
            count = float(line.split()[-1])
        elif line.startswith(LAG + "_sum "):
            total = float(line.split()[-1])
        elif line.startswith(LAG + "_bucket{le=\""):
            le = line.split('"')[1]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.split()[-1])))
    return count, total, buckets


def median_of(buckets, count):
    """The median, linearly interpolated within the bucket that holds it."""
    lower, below = 0.0, 0.0
    for upper, cumulative in buckets:
        if cumulative >= count / 2:
            inside = cumulative - below
            if upper == float("inf") or inside == 0:
                return lower
            return lower + (upper - lower) * (count / 2 - below) / inside
        lower, below = upper, cumulative
    return float("nan")


def window(streams, s3, args, source):
    work = tempfile.mkdtemp(prefix="s3-cpu-", dir=args.media_dir)
    os.makedirs(os.path.join(work, "media"))
    rtmp, http = load.free_port(), load.free_port()
    cmd = [load.BIN, "--bind", "127.0.0.1", "--rtmp-port", str(rtmp), "--http-port", str(http),
           "--media-root", os.path.join(work, "media"), "--log-level", "warn"]
    store = None
    if s3:
        port = load.free_port()
        root = os.path.join(work, "s3")
        os.makedirs(os.path.join(root, "media"))
        store = subprocess.Popen([s3s_fs(), "--host", "127.0.0.1", "--port", str(port),
                                  "--access-key", "cpu", "--secret-key", "cpu-secret", root],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        cmd += ["--s3-endpoint", f"http://127.0.0.1:{port}", "--s3-bucket", "media",
                "--s3-access-key", "cpu", "--s3-secret-key", "cpu-secret"]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    publishers = []
    try:
        load.wait_http(f"http://127.0.0.1:{http}/healthz")
        publishers = [tls_cpu.publish(f"rtmp://127.0.0.1:{rtmp}/live/s{i}", source)
                      for i in range(streams)]
        time.sleep(args.warmup)
        lag_before = lag_histogram(load.fetch(f"http://127.0.0.1:{http}/metrics"))
        before, t0 = load.cpu_seconds([server.pid]), time.time()
        threads_before = load.thread_cpu_seconds(server.pid)
        machine_before = load.machine_busy_seconds()
        time.sleep(args.seconds)
        cpu, wall = load.cpu_seconds([server.pid]) - before, time.time() - t0
        threads = load.thread_cpu_seconds(server.pid)
        machine = load.machine_busy_seconds() - machine_before
        metrics = load.fetch(f"http://127.0.0.1:{http}/metrics")
        live = json.loads(load.fetch(f"http://127.0.0.1:{http}/api/streams"))["streams"]
        result = {
            "s3": s3,
            "streams_live": len(live),
            "ms_per_s_per_stream": cpu * 1000 / wall / streams,
            "machine_ms_per_s_per_stream": machine * 1000 / wall / streams,
            # The uploader's own thread: what object storage adds, apart from the noise of
            # the other threads (the disk writer's cost moves with the disk).
            "uploader_ms_per_s_per_stream": (threads.get("s3-uploader", 0)
                                             - threads_before.get("s3-uploader", 0))
            * 1000 / wall / streams,
        }
        if s3:
            count, total, buckets = lag_histogram(metrics)
            # Only the measured window: the warm-up's observations taken off.
            count -= lag_before[0]
            total -= lag_before[1]
            before_by_le = dict(lag_before[2])
            buckets = [(le, n - before_by_le.get(le, 0)) for le, n in buckets]
            failures = sum(float(l.split()[-1]) for l in metrics.splitlines()
                           if l.startswith("rtmp_server_s3_failures_total{"))
            result.update({
                "playlist_versions": count,
                "lag_mean_ms": total / count * 1000 if count else None,
                "lag_median_ms": median_of(buckets, count) * 1000 if count else None,
                "upload_failures": failures,
            })
        return result
    finally:
        for p in publishers:
            p.terminate()
        for p in publishers:
            p.wait()
        load.stop(server, signal.SIGTERM, os.path.join(work, "media"))
        if store is not None:
            store.kill()
            store.wait()
        shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=40)
    parser.add_argument("--warmup", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--media-dir", default=None)
    parser.add_argument("--json", default=None)
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--bin", "rtmp-server"], cwd=load.ROOT,
                       check=True)
    source = tls_cpu.make_media()
    rounds = []
    for r in range(args.rounds):
        for s3 in (False, True):
            w = window(args.streams, s3, args, source)
            rounds.append(w)
            extra = ""
            if s3:
                extra = (f"; uploader thread {w['uploader_ms_per_s_per_stream']:.2f} ms/s; "
                         f"{w['playlist_versions']:.0f} playlist versions in the bucket, lag "
                         f"median {w['lag_median_ms']:.1f} ms, mean {w['lag_mean_ms']:.1f} ms, "
                         f"{w['upload_failures']:.0f} failures")
            print(f"round {r + 1} s3={'on ' if s3 else 'off'}: "
                  f"{w['ms_per_s_per_stream']:.2f} ms/s per stream "
                  f"(machine {w['machine_ms_per_s_per_stream']:.2f}), {w['streams_live']} live"
                  f"{extra}", flush=True)

    def med(key, s3):
        return load.median([w[key] for w in rounds if w["s3"] == s3])

    off, on = med("ms_per_s_per_stream", False), med("ms_per_s_per_stream", True)
    m_off, m_on = med("machine_ms_per_s_per_stream", False), med("machine_ms_per_s_per_stream", True)
    lag = med("lag_median_ms", True)
    uploader = med("uploader_ms_per_s_per_stream", True)
    result = {"streams": args.streams, "seconds": args.seconds, "rounds": rounds,
              "off_ms_per_s_per_stream": off, "on_ms_per_s_per_stream": on,
              "ratio": on / off if off else None,
              "machine_off_ms_per_s_per_stream": m_off, "machine_on_ms_per_s_per_stream": m_on,
              "machine_ratio": m_on / m_off if m_off else None,
              "lag_median_ms": lag, "uploader_ms_per_s_per_stream": uploader}
    print(f"median per stream, server: off {off:.2f} ms/s, on {on:.2f} ms/s, on/off {on / off:.3f}")
    print(f"median per stream, machine (s3s-fs and publishers included): "
          f"off {m_off:.2f} ms/s, on {m_on:.2f} ms/s, on/off {m_on / m_off:.3f}")
    print(f"median per stream, the uploader thread: {uploader:.2f} ms/s "
          f"({uploader / off * 100:.1f} % of the server without object storage)")
    print(f"playlist lag, node -> bucket: median of the rounds' medians {lag:.1f} ms")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
