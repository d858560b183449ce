#!/usr/bin/env python3
"""Measures what a multitrack publish costs the server against the same renditions
published as separate streams, side by side in one run.

    scripts/multitrack_cpu.py [--streams 5] [--seconds 60] [--rounds 3]

It makes (once, with ffmpeg 9, into target/multitrack-media/) a 60 s source at 1280x720,
854x480 and 426x240 (30 fps, x264 veryfast, a keyframe every 2 s on every rendition, 3000,
1200 and 500 kbit/s) with 128 kbit/s AAC, as one multitrack FLV (the three renditions and
the audio in one publish, as OBS's Enhanced Broadcasting and ffmpeg 8+ send it) and as
three FLV files (each rendition with the same audio). Then, for --rounds rounds, it starts
the release server and measures its CPU (utime+stime from /proc) over --seconds while
`rtmp-load` publishes, in turn:

- multitrack: N streams of the multitrack file (N publishes, 4 tracks each);
- separate:   3N streams, N of each rendition file (3N publishes, 2 tracks each);

(a single-rendition H.264/AAC stream gets the TS output besides CMAF on the defaults, a
multitrack one CMAF only; --cmaf-only switches TS off for both, to compare like with like)

and prints each phase's CPU (% of one core, in all and per rendition set) and RSS growth,
and the medians and their ratio. Only the Python standard library is used; figures are
printed, never asserted.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load  # noqa: E402  (the shared measuring helpers)

MEDIA = os.path.join(load.ROOT, "target/multitrack-media")
RENDITIONS = [("720", "1280:720", "3000k"), ("480", "854:480", "1200k"), ("240", "426:240", "500k")]


def ffmpeg9():
    path = os.environ.get("RTMP_SERVER_FFMPEG9")
    if path:
        return path
    cache = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
                         "rtmp-server/imageio-ffmpeg")
    sys.path.insert(0, cache)
    import imageio_ffmpeg
    return imageio_ffmpeg.get_ffmpeg_exe()


def make_media():
    os.makedirs(MEDIA, exist_ok=True)
    multitrack = os.path.join(MEDIA, "multitrack.flv")
    singles = [os.path.join(MEDIA, f"rendition_{name}.flv") for name, _, _ in RENDITIONS]
    if all(os.path.exists(p) for p in [multitrack, *singles]):
        return multitrack, singles
    ff = ffmpeg9()
    source = ["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30", "-f", "lavfi",
              "-i", "sine=frequency=440:sample_rate=48000", "-t", "60"]
    x264 = ["-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-keyint_min", "60",
            "-sc_threshold", "0", "-pix_fmt", "yuv420p"]
    aac = ["-c:a", "aac", "-b:a", "128k", "-ar", "48000"]
    splits = "".join(f"[v{i}]" for i in range(len(RENDITIONS)))
    scales = ";".join(f"[v{i}]scale={size}[s{i}]" for i, (_, size, _) in enumerate(RENDITIONS))
    graph = f"[0:v]split={len(RENDITIONS)}{splits};{scales}"
    maps = sum((["-map", f"[s{i}]"] for i in range(len(RENDITIONS))), [])
    rates = sum(([f"-b:v:{i}", rate] for i, (_, _, rate) in enumerate(RENDITIONS)), [])
    subprocess.run([ff, "-y", "-hide_banner", "-loglevel", "error", *source,
                    "-filter_complex", graph, *maps, "-map", "1:a", *x264, *rates, *aac,
                    multitrack], check=True)
    for (_, size, rate), path in zip(RENDITIONS, singles):
        subprocess.run([ff, "-y", "-hide_banner", "-loglevel", "error", *source,
                        "-vf", f"scale={size}", *x264, "-b:v", rate, *aac, path], check=True)
    return multitrack, singles


def measure(files_and_counts, seconds, warmup, extra=()):
    """Server CPU (% of one core) and RSS growth while the given publishers run."""
    work = tempfile.mkdtemp(prefix="multitrack-cpu-")
    rtmp, http = load.free_port(), load.free_port()
    server = subprocess.Popen(
        [load.BIN, "--bind", "127.0.0.1", "--rtmp-port", str(rtmp), "--http-port", str(http),
         "--media-root", os.path.join(work, "media"), "--log-level", "warn",
         "--rtmp-max-connections", "10000", *extra],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "server.log"), "w"))
    loadgens = []
    try:
        load.wait_http(f"http://127.0.0.1:{http}/healthz")
        rss0 = load.rss_bytes([server.pid])
        duration = warmup + seconds + 2
        for k, (path, n) in enumerate(files_and_counts):
            loadgens.append(subprocess.Popen(
                [load.LOAD_BIN, "--url", f"rtmp://127.0.0.1:{rtmp}/live", "--file", path,
                 "--streams", str(n), "--duration", str(duration), "--key-prefix", f"set{k}-"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        time.sleep(warmup)
        cpu0, t0 = load.cpu_seconds([server.pid]), time.monotonic()
        time.sleep(seconds)
        cpu1, t1 = load.cpu_seconds([server.pid]), time.monotonic()
        rss = load.rss_bytes([server.pid]) - rss0
        metrics = load.fetch(f"http://127.0.0.1:{http}/metrics")
        for g in loadgens:
            out, _ = g.communicate(timeout=duration + 60)
            if g.returncode != 0:
                print(out, file=sys.stderr)
                raise RuntimeError("a publisher failed")
        return 100 * (cpu1 - cpu0) / (t1 - t0), rss, load.metric(metrics, "rtmp_server_segments_total")
    finally:
        for g in loadgens:
            if g.poll() is None:
                g.kill()
        server.send_signal(load.signal.SIGTERM)
        server.wait(timeout=30)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=5, help="rendition sets (N)")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cmaf-only", action="store_true",
                        help="run the server with hls.ts off, so the separate streams make "
                             "the same outputs as the multitrack one (CMAF only)")
    args = parser.parse_args()
    extra = ["--hls-ts", "false"] if args.cmaf_only else []
    multitrack, singles = make_media()
    n = args.streams
    results = {"multitrack": [], "separate": []}
    for r in range(args.rounds):
        for phase, publishers in [("multitrack", [(multitrack, n)]),
                                  ("separate", [(path, n) for path in singles])]:
            cpu, rss, segments = measure(publishers, args.seconds, args.warmup, extra)
            results[phase].append(cpu)
            print(f"round {r + 1} {phase:10}: {len(publishers) * n:3} publishes  "
                  f"CPU {cpu:6.2f}% ({cpu / n:.3f}% per rendition set)  "
                  f"RSS +{rss / 2**20:.1f} MiB  segments {segments:.0f}  load {load.loadavg()}",
                  flush=True)
    m, s = statistics.median(results["multitrack"]), statistics.median(results["separate"])
    print(f"median over {args.rounds} rounds, {n} rendition sets: multitrack {m:.2f}%, "
          f"separate {s:.2f}%, multitrack/separate = {m / s:.2f}")


if __name__ == "__main__":
    main()
