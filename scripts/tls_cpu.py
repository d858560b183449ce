#!/usr/bin/env python3
"""Measures what TLS costs ingest: the server's CPU per stream for N publishes over RTMPS
against N over plain RTMP, in turn on one server with both listeners on.

    scripts/tls_cpu.py [--streams 8] [--seconds 60] [--warmup 15] [--rounds 2] [--key ec|rsa]
                       [--media-dir /dev/shm] [--cmaf-only] [--no-build]

It makes (once, with the system's ffmpeg, into $CARGO_TARGET_DIR/tls-media/, default
target/) a 60 s 1280x720 30 fps H.264 file (x264 veryfast, High, 2 B-frames, a keyframe
every 2 s, 3000 kbit/s with a 3000 kbit maxrate and buffer) with 128 kbit/s stereo AAC, about
3.15 Mbit/s in all, and a self-signed certificate (--key ec: P-256 ECDSA, the default; rsa:
RSA 2048) with openssl. It starts the release server once, on its defaults (TS and CMAF
outputs; media root in a temporary folder, or under --media-dir: /dev/shm takes the disk
writes, which cost more than ingest itself, out of the noise) plus RTMPS (--rtmp-tls-port)
and HTTPS (--http-tls-port, unused here), and for --rounds rounds, in alternating order,
runs two phases:

- plain: N ffmpeg publishers (`ffmpeg -re -stream_loop -1 -i FILE -c copy -f flv
  rtmp://...`), real time, looping the file;
- tls:   the same N publishers to `rtmps://...` (ffmpeg's TLS, no certificate check).

Each phase waits --warmup seconds, then measures over --seconds: the server's CPU
(utime+stime from /proc/PID/stat) as ms of CPU per second of wall time per stream (ms/s =
tenths of a percent of one core), the same for its ingest thread alone (the thread named
`rtmp-server`, where RTMP connections run and TLS records are opened; the disk writer is a
`tokio-rt-worker`), each thread's % of a core, the server's context switches per second
(voluntary and not, summed over its threads), the publishers' CPU and the rest of the
machine's. After the window it checks that every stream of the phase has segments in both
playlists (index.m3u8 and llhls.m3u8) and that the TLS phase's connections were logged in
`rtmps{peer=...}` spans (the plain phase's in `rtmp{peer=...}`). Publishers are stopped
between phases and the next phase uses other stream keys.

It prints every phase and, per round and over the medians, the TLS/plain ratio of CPU per
stream, for the whole process and for the ingest thread alone. Only the Python standard
library is used (and ffmpeg, openssl); figures are printed, never asserted.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load  # noqa: E402  (the shared measuring helpers)

MEDIA = os.path.join(load.TARGET, "tls-media")
FILE = os.path.join(MEDIA, "h264_720p30_3m_60s.flv")


def make_media():
    if os.path.exists(FILE):
        return FILE
    os.makedirs(MEDIA, exist_ok=True)
    subprocess.run(
        ["ffmpeg", "-y", "-hide_banner", "-loglevel", "error",
         "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000,aformat=channel_layouts=stereo",
         "-t", "60", "-c:v", "libx264", "-profile:v", "high", "-preset", "veryfast", "-bf", "2",
         "-g", "60", "-keyint_min", "60", "-sc_threshold", "0", "-pix_fmt", "yuv420p",
         "-b:v", "3000k", "-maxrate", "3000k", "-bufsize", "3000k",
         "-c:a", "aac", "-b:a", "128k", "-ar", "48000", FILE + ".part.flv"], check=True)
    os.rename(FILE + ".part.flv", FILE)
    return FILE


def make_cert(folder, kind):
    """A self-signed certificate for localhost and 127.0.0.1: P-256 ECDSA or RSA 2048."""
    cert, key = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
    newkey = (["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if kind == "ec"
              else ["-newkey", "rsa:2048"])
    subprocess.run(["openssl", "req", "-x509", *newkey, "-nodes", "-days", "2",
                    "-keyout", key, "-out", cert, "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


class Server:
    """The release server with plain and TLS listeners for RTMP and HTTP."""

    def __init__(self, cert, key, extra=(), log_level="info", media_dir=None):
        self.work = tempfile.mkdtemp(prefix="tls-cpu-", dir=media_dir)
        self.rtmp, self.rtmps = load.free_port(), load.free_port()
        self.http, self.https = load.free_port(), load.free_port()
        self.log = os.path.join(self.work, "server.log")
        self.proc = subprocess.Popen(
            [load.BIN, "--bind", "127.0.0.1", "--rtmp-port", str(self.rtmp),
             "--rtmp-tls-port", str(self.rtmps), "--http-port", str(self.http),
             "--http-tls-port", str(self.https), "--tls-cert", cert, "--tls-key", key,
             "--media-root", os.path.join(self.work, "media"), "--log-level", log_level,
             "--rtmp-max-connections", "10000", *extra],
            stdout=subprocess.DEVNULL, stderr=open(self.log, "w"))
        self.pid = self.proc.pid
        load.wait_http(f"http://127.0.0.1:{self.http}/healthz")

    def stop(self):
        load.stop(self.proc, load.signal.SIGTERM, self.work)


def context_switches(pid):
    """(voluntary, involuntary) context switches summed over the threads of `pid`."""
    vol = invol = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        vol += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches:"):
                        invol += int(line.split()[1])
        except FileNotFoundError:
            pass
    return vol, invol


def segments_listed(url):
    """Segments a playlist has listed since the stream began (media sequence + listed)."""
    try:
        text = load.fetch(url)
    except Exception:
        return 0
    sequence, listed = 0, 0
    for line in text.splitlines():
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            sequence = int(line.split(":", 1)[1])
        elif line.startswith("#EXTINF:"):
            listed += 1
    return sequence + listed if listed else 0


def publish(url, path):
    return subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1",
         "-i", path, "-c", "copy", "-f", "flv", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def phase(server, scheme, keys, path, warmup, seconds):
    port = server.rtmps if scheme == "rtmps" else server.rtmp
    with open(server.log) as f:
        f.seek(0, os.SEEK_END)
        log_start = f.tell()
    started = time.monotonic()
    publishers = [publish(f"{scheme}://127.0.0.1:{port}/live/{key}", path) for key in keys]
    try:
        time.sleep(warmup)
        pub_pids = [p.pid for p in publishers]
        cpu0, t0 = load.cpu_seconds([server.pid]), time.monotonic()
        threads0 = load.thread_cpu_seconds(server.pid)
        cs0 = context_switches(server.pid)
        pub0, busy0 = load.cpu_seconds(pub_pids), load.machine_busy_seconds()
        time.sleep(seconds)
        cpu1, t1 = load.cpu_seconds([server.pid]), time.monotonic()
        threads1 = load.thread_cpu_seconds(server.pid)
        cs1 = context_switches(server.pid)
        pub1, busy1 = load.cpu_seconds(pub_pids), load.machine_busy_seconds()
        window = t1 - t0
        expected = (time.monotonic() - started) / 2  # hls.time = 2, a keyframe every 2 s
        base = f"http://127.0.0.1:{server.http}/live"
        ts = [segments_listed(f"{base}/{key}/index.m3u8") for key in keys]
        cmaf = [segments_listed(f"{base}/{key}/llhls.m3u8") for key in keys]
        dead = [p.args[-1] for p in publishers if p.poll() is not None]
    finally:
        for p in publishers:
            if p.poll() is None:
                p.terminate()
        errors = []
        for p in publishers:
            try:
                _, err = p.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                _, err = p.communicate()
            if err.strip() and p.returncode not in (0, 255, -15):
                errors.append(err.strip().splitlines()[-1])
    with open(server.log) as f:
        f.seek(log_start)
        log = f.read()
    n = len(keys)
    cpu = cpu1 - cpu0
    return {
        "ms_per_s_per_stream": 1000 * cpu / window / n,
        "cpu_pct": 100 * cpu / window,
        "ingest_ms_per_s_per_stream": 1000 * (threads1.get("rtmp-server", 0)
                                              - threads0.get("rtmp-server", 0)) / window / n,
        "threads": {name: 100 * (threads1.get(name, 0) - threads0.get(name, 0)) / window
                    for name in threads1},
        "vcs_per_s": (cs1[0] - cs0[0]) / window,
        "ics_per_s": (cs1[1] - cs0[1]) / window,
        "pub_pct": 100 * (pub1 - pub0) / window,
        "other_pct": 100 * max(0.0, (busy1 - busy0) - cpu - (pub1 - pub0)) / window,
        "ts": (min(ts), max(ts)),
        "cmaf": (min(cmaf), max(cmaf)),
        "expected": expected,
        "spans": log.count(f"{scheme}{{peer="),
        # Keys named in a line of this scheme's connection span: the publishes went over it.
        "keys_logged": sum(1 for key in keys if any(
            key in line for line in log.splitlines() if f"{scheme}{{peer=" in line)),
        "dead": dead,
        "errors": errors,
        "load": load.loadavg(),
    }


def ratio(a, b):
    """a / b, or nan when b is zero (a window too short for the clock ticks)."""
    return a / b if b else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=8, help="publishers per phase (N)")
    parser.add_argument("--seconds", type=float, default=60, help="measuring window per phase")
    parser.add_argument("--warmup", type=float, default=15,
                        help="seconds from the publishers' start to the window")
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds of a plain and a TLS phase (order alternates)")
    parser.add_argument("--key", choices=["ec", "rsa"], default="ec",
                        help="certificate key: P-256 ECDSA or RSA 2048")
    parser.add_argument("--cmaf-only", action="store_true", help="run the server with hls.ts off")
    parser.add_argument("--media-dir", default=None,
                        help="folder for the server's media root (e.g. /dev/shm, a tmpfs, to "
                             "take disk writes out of the noise); default: the temporary folder")
    parser.add_argument("--no-build", action="store_true", help="skip `cargo build --release`")
    args = parser.parse_args()
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "rtmp-server"],
                       cwd=load.ROOT, check=True)
    path = make_media()
    certs = tempfile.mkdtemp(prefix="tls-cpu-cert-")
    cert, key = make_cert(certs, args.key)
    extra = ["--hls-ts", "false"] if args.cmaf_only else []
    n = args.streams
    with open("/proc/cpuinfo") as f:
        model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
    print(f"machine: {os.cpu_count()} cores ({model}); {os.path.basename(path)}; N={n}; "
          f"{args.seconds:.0f} s window after {args.warmup:.0f} s; {args.key} certificate; "
          f"outputs {'CMAF' if args.cmaf_only else 'TS + CMAF'}", flush=True)
    server = Server(cert, key, extra, media_dir=args.media_dir)
    results = {"plain": [], "tls": []}
    try:
        time.sleep(2)
        cpu0, t0 = load.cpu_seconds([server.pid]), time.monotonic()
        time.sleep(5)
        idle = 1000 * (load.cpu_seconds([server.pid]) - cpu0) / (time.monotonic() - t0)
        print(f"idle server: {idle:.2f} ms of CPU per s", flush=True)
        for r in range(args.rounds):
            order = ["plain", "tls"] if r % 2 == 0 else ["tls", "plain"]
            for name in order:
                scheme = "rtmps" if name == "tls" else "rtmp"
                keys = [f"r{r + 1}-{name}-{i + 1}" for i in range(n)]
                p = phase(server, scheme, keys, path, args.warmup, args.seconds)
                results[name].append(p)
                threads = ", ".join(f"{k} {v:.1f}%" for k, v in sorted(p["threads"].items()))
                print(f"round {r + 1} {name:5}: {p['ms_per_s_per_stream']:.3f} ms/s per stream "
                      f"(ingest thread {p['ingest_ms_per_s_per_stream']:.3f}); server "
                      f"{p['cpu_pct']:.1f}% of a core ({threads}); context switches "
                      f"{p['vcs_per_s']:.0f}+{p['ics_per_s']:.0f}/s; publishers "
                      f"{p['pub_pct']:.1f}%, other {p['other_pct']:.1f}%; segments per stream "
                      f"TS {p['ts'][0]}-{p['ts'][1]}, CMAF {p['cmaf'][0]}-{p['cmaf'][1]} "
                      f"(~{p['expected']:.0f} expected); {p['spans']} {scheme}{{peer}} log "
                      f"lines, {p['keys_logged']}/{n} keys in them; load {p['load']}", flush=True)
                if p["dead"] or p["errors"]:
                    print(f"    publishers ended early: {p['dead']} {p['errors'][:3]}", flush=True)
                time.sleep(5)  # the phase's streams end before the next phase starts
    finally:
        server.stop()
        shutil.rmtree(certs, ignore_errors=True)
    plain = [p["ms_per_s_per_stream"] for p in results["plain"]]
    tls = [p["ms_per_s_per_stream"] for p in results["tls"]]
    for r, (a, b) in enumerate(zip(plain, tls)):
        print(f"round {r + 1}: plain {a:.3f}, tls {b:.3f} ms/s per stream, "
              f"tls/plain = {ratio(b, a):.2f}")
    plain_i = [p["ingest_ms_per_s_per_stream"] for p in results["plain"]]
    tls_i = [p["ingest_ms_per_s_per_stream"] for p in results["tls"]]
    for r, (a, b) in enumerate(zip(plain_i, tls_i)):
        print(f"round {r + 1}, ingest thread alone: plain {a:.3f}, tls {b:.3f} ms/s per stream, "
              f"tls/plain = {ratio(b, a):.2f}")
    mp, mt = statistics.median(plain_i), statistics.median(tls_i)
    print(f"median over {args.rounds} rounds, N={n}, ingest thread alone: plain {mp:.3f} (range "
          f"{min(plain_i):.3f}-{max(plain_i):.3f}), tls {mt:.3f} (range {min(tls_i):.3f}-"
          f"{max(tls_i):.3f}) ms/s per stream; tls/plain = {ratio(mt, mp):.2f}", flush=True)
    mp, mt = statistics.median(plain), statistics.median(tls)
    print(f"median over {args.rounds} rounds, N={n}: plain {mp:.3f} (range {min(plain):.3f}-"
          f"{max(plain):.3f}), tls {mt:.3f} (range {min(tls):.3f}-{max(tls):.3f}) ms/s per "
          f"stream; tls/plain = {ratio(mt, mp):.2f}", flush=True)


if __name__ == "__main__":
    main()
