#!/usr/bin/env python3
"""Measures what recording costs: the server's CPU per stream with `record.enabled` off and
on, in one run, alternating.

    scripts/record_cpu.py [--streams 8] [--seconds 40] [--warmup 10] [--rounds 2]
                          [--media-dir /dev/shm] [--json FILE] [--no-build]

The source is the 60 s 1280x720 30 fps 3 Mbit/s H.264 + AAC file of scripts/tls_cpu.py
(made once with the system's ffmpeg). Each round starts the release binary on its defaults
(free ports, a media root in a temporary folder, under --media-dir if given) once with
recording off and once with `--record-enabled true`, publishes the file to N streams
(`ffmpeg -re -stream_loop -1 -c copy`), waits --warmup seconds, then measures the server's
CPU (utime+stime of /proc/PID/stat, and per thread) over --seconds, as ms of CPU per second
of wall time per stream, and the machine's (/proc/stat: the publishers, and the kernel's
writeback of what the server wrote, which fdatasync moves into the server's own time), and
checks that the recordings grow. It prints the per-round figures, the medians
and the ratio on/off. Only the Python standard library is used; figures are printed, never
asserted.
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


def window(streams, record, args, source):
    work = tempfile.mkdtemp(prefix="record-cpu-", dir=args.media_dir)
    rtmp, http = load.free_port(), load.free_port()
    cmd = [load.BIN, "--bind", "127.0.0.1", "--rtmp-port", str(rtmp), "--http-port", str(http),
           "--media-root", work, "--log-level", "warn"]
    if record:
        cmd += ["--record-enabled", "true"]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    publishers = []
    try:
        load.wait_http(f"http://127.0.0.1:{http}/healthz")
        publishers = [tls_cpu.publish(f"rtmp://127.0.0.1:{rtmp}/live/s{i}", source)
                      for i in range(streams)]
        time.sleep(args.warmup)
        before, t0 = load.cpu_seconds([server.pid]), time.time()
        machine_before = load.machine_busy_seconds()
        threads_before = load.thread_cpu_seconds(server.pid)
        time.sleep(args.seconds)
        cpu, wall = load.cpu_seconds([server.pid]) - before, time.time() - t0
        machine = load.machine_busy_seconds() - machine_before
        threads = {name: (secs - threads_before.get(name, 0)) * 1000 / wall / streams
                   for name, secs in load.thread_cpu_seconds(server.pid).items()}
        recorded = json.loads(load.fetch(f"http://127.0.0.1:{http}/api/recordings"))["recordings"]
        live = json.loads(load.fetch(f"http://127.0.0.1:{http}/api/streams"))["streams"]
        return {
            "record": record,
            "streams_live": len(live),
            "recordings": len(recorded),
            "recorded_bytes": sum(r["bytes"] for r in recorded),
            "ms_per_s_per_stream": cpu * 1000 / wall / streams,
            "machine_ms_per_s_per_stream": machine * 1000 / wall / streams,
            "threads_ms_per_s_per_stream": {k: round(v, 3) for k, v in threads.items() if v > 0},
        }
    finally:
        for p in publishers:
            p.terminate()
        for p in publishers:
            p.wait()
        load.stop(server, signal.SIGTERM, work)


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
        for record in (False, True):
            w = window(args.streams, record, args, source)
            rounds.append(w)
            print(f"round {r + 1} record={'on ' if record else 'off'}: "
                  f"{w['ms_per_s_per_stream']:.2f} ms/s per stream "
                  f"(machine {w['machine_ms_per_s_per_stream']:.2f}), {w['streams_live']} live, "
                  f"{w['recordings']} recordings, {w['recorded_bytes']} bytes recorded; by thread "
                  f"{w['threads_ms_per_s_per_stream']}", flush=True)
    def med(key, record):
        return load.median([w[key] for w in rounds if w["record"] == record])

    off, on = med("ms_per_s_per_stream", False), med("ms_per_s_per_stream", True)
    m_off, m_on = med("machine_ms_per_s_per_stream", False), med("machine_ms_per_s_per_stream", True)
    result = {"streams": args.streams, "seconds": args.seconds, "rounds": rounds,
              "off_ms_per_s_per_stream": off, "on_ms_per_s_per_stream": on,
              "ratio": on / off if off else None,
              "machine_off_ms_per_s_per_stream": m_off, "machine_on_ms_per_s_per_stream": m_on,
              "machine_ratio": m_on / m_off if m_off else None}
    print(f"median per stream, server: off {off:.2f} ms/s, on {on:.2f} ms/s, on/off {on / off:.3f}")
    print(f"median per stream, machine (publishers and kernel writeback included): "
          f"off {m_off:.2f} ms/s, on {m_on:.2f} ms/s, on/off {m_on / m_off:.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
