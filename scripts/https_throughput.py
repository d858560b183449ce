#!/usr/bin/env python3
"""Measures segment delivery over plain HTTP/1.1, HTTPS with HTTP/1.1 and HTTPS with HTTP/2
on the same load: throughput, and throughput per fully used server core.

    scripts/https_throughput.py [--seconds 20] [--clients 32] [--threads 1] [--rounds 2]
                                [--segments 6] [--streams-per-client 1] [--key ec|rsa]
                                [--modes http1,https1,h2] [--no-build]

It starts the release server (both HTTP listeners, and RTMP; `hls.list_size = 30`, so the
segments it picks stay listed through a run) with a self-signed certificate (--key ec:
P-256 ECDSA, the default; rsa: RSA 2048), publishes one real-time stream of the 720p30
3.15 Mbit/s file of scripts/tls_cpu.py (made once) with ffmpeg over RTMP, and waits until
both playlists list --segments segments. Then, for --rounds rounds and each mode in turn, it
takes the newest --segments MPEG-TS segments (index.m3u8) and as many CMAF segments
(llhls.m3u8), about 0.8 MB each, served from the server's memory, and has `h2load` (Debian
package nghttp2-client, installed with apt-get when missing) fetch them over and over for
--seconds, from --clients connections on --threads client threads, one request at a time per
connection (--streams-per-client concurrent streams per HTTP/2 connection):

- http1:  http://   HTTP/1.1 (keep-alive; h2load --h1)
- https1: https://  HTTP/1.1 (ALPN http/1.1; h2load --h1)
- h2:     https://  HTTP/2 (ALPN h2)

Per run it prints the body bytes delivered as Gbit/s of wall time, the server's CPU (utime+
stime from /proc, % of one core; its HTTP threads apart), Gbit/s per fully used server core
(body bytes x 8 / server CPU seconds), requests/s, failures and non-2xx answers, and the
client's CPU (h2load's, from its rusage) and the rest of the machine's: on a small machine
the client competes with the server for the cores, so the per-core figure is the one to
compare across modes. The TLS version, cipher and key exchange h2load reports are printed
once per mode. Only the Python standard library is used; figures are printed, never asserted.
"""

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load  # noqa: E402  (the shared measuring helpers)
import tls_cpu  # noqa: E402  (the media, the certificate and the server with TLS listeners)

MODES = {"http1": ("http", True), "https1": ("https", True), "h2": ("https", False)}


def ensure_h2load():
    if shutil.which("h2load"):
        return
    subprocess.run(["apt-get", "install", "-y", "nghttp2-client"], check=False,
                   stdout=subprocess.DEVNULL)
    if not shutil.which("h2load"):
        subprocess.run(["apt-get", "update"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "nghttp2-client"], check=True,
                       stdout=subprocess.DEVNULL)


def playlist_segments(url):
    """The segment URIs a playlist lists (its lines that are not tags), oldest first."""
    try:
        text = load.fetch(url)
    except Exception:
        return []
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def number(pattern, text, default=0.0):
    m = re.search(pattern, text)
    return float(m.group(1)) if m else default


def run(server, key, mode, args, work):
    scheme, h1 = MODES[mode]
    port = server.http if scheme == "http" else server.https
    stream = f"http://127.0.0.1:{server.http}/live/{key}"
    names = (playlist_segments(f"{stream}/index.m3u8")[-args.segments:]
             + playlist_segments(f"{stream}/llhls.m3u8")[-args.segments:])
    uris = os.path.join(work, f"{mode}.txt")
    with open(uris, "w") as f:
        for name in names:
            f.write(f"{scheme}://127.0.0.1:{port}/live/{key}/{name}\n")
    sizes = [len(urlopen_bytes(f"{stream}/{name}")) for name in names]
    cmd = ["h2load", "-D", f"{args.seconds:g}", "-c", str(args.clients), "-t", str(args.threads),
           "-m", "1" if h1 else str(args.streams_per_client), "-i", uris]
    if h1:
        cmd.append("--h1")
    client0 = children_cpu()
    cpu0, t0 = load.cpu_seconds([server.pid]), time.monotonic()
    threads0, busy0 = load.thread_cpu_seconds(server.pid), load.machine_busy_seconds()
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    cpu1, t1 = load.cpu_seconds([server.pid]), time.monotonic()
    threads1, busy1 = load.thread_cpu_seconds(server.pid), load.machine_busy_seconds()
    client = children_cpu() - client0
    out = done.stdout
    if done.returncode != 0 or "finished in" not in out:
        raise RuntimeError(f"h2load failed:\n{out}")
    wall = t1 - t0
    # h2load's own measuring time (from the first connection to the end of --duration).
    measured = number(r"finished in ([\d.]+)s", out)
    data = number(r"traffic: .*?, [^,]*?\((\d+)\) data", out)
    cpu = cpu1 - cpu0
    return {
        "gbps": data * 8 / measured / 1e9,
        "server_pct": 100 * cpu / wall,
        "http_pct": 100 * (threads1.get("http", 0) - threads0.get("http", 0)) / wall,
        "gbps_per_core": data * 8 / cpu / 1e9,
        "req_s": number(r"finished in [\d.]+s, ([\d.]+) req/s", out),
        "failed": number(r"(\d+) failed", out) + number(r"(\d+) errored", out)
        + number(r"(\d+) timeout", out),
        "non_2xx": sum(number(rf"(\d+) {c}xx", out) for c in "345"),
        "client_pct": 100 * client / wall,
        "other_pct": 100 * max(0.0, (busy1 - busy0) - cpu - client) / wall,
        "tls": ", ".join(
            f"{k} {m.group(1).strip()}" for k in ["TLS Protocol", "Cipher", "Server Temp Key",
                                                  "Application protocol"]
            if (m := re.search(rf"{k}: (.*)", out))),
        "segment_kb": statistics.mean(sizes) / 1000 if sizes else 0,
        "files": len(names),
    }


def urlopen_bytes(url):
    with load.urllib.request.urlopen(url, timeout=10) as r:
        return r.read()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20, help="h2load --duration per run")
    parser.add_argument("--clients", type=int, default=32, help="connections (h2load -c)")
    parser.add_argument("--threads", type=int, default=1, help="client threads (h2load -t)")
    parser.add_argument("--streams-per-client", type=int, default=1,
                        help="concurrent streams per HTTP/2 connection (h2load -m)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--segments", type=int, default=6,
                        help="newest segments of each playlist fetched (TS and CMAF)")
    parser.add_argument("--key", choices=["ec", "rsa"], default="ec")
    parser.add_argument("--modes", default="http1,https1,h2")
    parser.add_argument("--no-build", action="store_true", help="skip `cargo build --release`")
    args = parser.parse_args()
    modes = args.modes.split(",")
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "rtmp-server"],
                       cwd=load.ROOT, check=True)
    ensure_h2load()
    path = tls_cpu.make_media()
    work = tempfile.mkdtemp(prefix="https-throughput-")
    cert, key_file = tls_cpu.make_cert(work, args.key)
    with open("/proc/cpuinfo") as f:
        model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
    print(f"machine: {os.cpu_count()} cores ({model}); h2load -c {args.clients} -t "
          f"{args.threads}, {args.seconds:.0f} s per run; {args.key} certificate", flush=True)
    server = tls_cpu.Server(cert, key_file, ["--hls-list-size", "30"], log_level="warn")
    key = "throughput"
    publisher = tls_cpu.publish(f"rtmp://127.0.0.1:{server.rtmp}/live/{key}", path)
    results = {mode: [] for mode in modes}
    try:
        stream = f"http://127.0.0.1:{server.http}/live/{key}"
        deadline = time.monotonic() + 2 * args.segments + 30
        while (len(playlist_segments(f"{stream}/index.m3u8")) < args.segments
               or len(playlist_segments(f"{stream}/llhls.m3u8")) < args.segments):
            if time.monotonic() > deadline:
                raise RuntimeError("the stream did not list enough segments")
            time.sleep(1)
        for r in range(args.rounds):
            order = modes if r % 2 == 0 else list(reversed(modes))
            for mode in order:
                x = run(server, key, mode, args, work)
                results[mode].append(x)
                print(f"round {r + 1} {mode:6}: {x['gbps']:6.2f} Gbit/s, {x['req_s']:7.1f} req/s "
                      f"({x['files']} files of {x['segment_kb']:.0f} kB on average); server "
                      f"{x['server_pct']:5.1f}% of a core (http threads {x['http_pct']:.1f}%) -> "
                      f"{x['gbps_per_core']:.2f} Gbit/s per server core; h2load "
                      f"{x['client_pct']:.1f}%, other {x['other_pct']:.1f}%; failed "
                      f"{x['failed']:.0f}, non-2xx {x['non_2xx']:.0f}", flush=True)
                if r == 0 and x["tls"]:
                    print(f"    {x['tls']}", flush=True)
    finally:
        publisher.terminate()
        try:
            publisher.wait(timeout=10)
        except subprocess.TimeoutExpired:
            publisher.kill()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"medians over {args.rounds} rounds:")
    base = statistics.median(x["gbps_per_core"] for x in results[modes[0]])
    for mode in modes:
        xs = results[mode]
        per_core = [x["gbps_per_core"] for x in xs]
        print(f"  {mode:6}: {statistics.median(x['gbps'] for x in xs):6.2f} Gbit/s, "
              f"{statistics.median(per_core):.2f} Gbit/s per server core (range "
              f"{min(per_core):.2f}-{max(per_core):.2f}; {statistics.median(per_core) / base:.2f}x "
              f"{modes[0]}), server {statistics.median(x['server_pct'] for x in xs):.0f}% of a "
              f"core, h2load {statistics.median(x['client_pct'] for x in xs):.0f}%", flush=True)


if __name__ == "__main__":
    main()
