#!/usr/bin/env python3
"""Measures rtmp-server under load: N real-time streams from `rtmp-load` (tools/load).

    scripts/load.py [--seconds 60] [--streams 1,10,50,100,200] [--viewers 0]
                    [--ll-viewers 0] [--file testdata/flv/h264_720p30_3m.flv] [--nginx]

For each N it starts the release server, publishes N streams of the file at real time,
waits for the ramp and the first segments, then measures the server process over a fixed
window and prints, per N:

- CPU: % of one core per stream, from /proc/PID/stat utime+stime over the window;
- RSS per stream: (RSS at the end of the window - RSS before publishing) / N, next to the
  segment bytes the server holds in memory per stream (its HLS window);
- segments produced versus expected (stream media time / hls.time);
- playlist freshness: how long after the media that closes a segment arrives the segment is
  listed, from the server's `segment_publish_seconds` histogram over the window (p50, p99,
  max bucket).

With --ll-viewers M, every stream also has M Low-Latency HLS viewers (rtmp-load's blocking
reload viewers of `llhls.m3u8`), and it prints besides:

- the CPU of the server's HTTP threads (named `http`) over the window, in all and per 1,000
  viewers, next to the ingest thread's and the rest of the machine's (other processes, so a
  run that overlapped other work shows it);
- how long after its last frame arrives a part is listed, from the server's
  `part_publish_seconds` histogram over the window (p50, p99, max bucket; bucket upper
  bounds);
- rtmp-load's own figures over its whole run: errors, blocked waits, and from a publisher's
  write of a part's last frame to the blocking answer listing the part and to the part's
  last byte (p50/p90/p99/max), and its CPU over the window.

With --variant NAME=BINARY[:ARG,ARG...] (repeatable), each N is measured once per variant,
each a server binary with extra options (e.g. an earlier build, or `--hls-cmaf,false`), in
turn and for --rounds rounds, and a summary gives each variant's median CPU and memory per
stream and its ratio to the first variant's: side by side, in one run.

With --nginx, the same publishers and file also go to nginx-rtmp (Debian's nginx with
libnginx-mod-rtmp, HLS on, 2 s fragments; installed with apt-get when missing) and its CPU
and RSS (master and workers) are measured the same way, side by side.

Only the Python standard library is used. Figures are printed, never asserted.
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Cargo's target folder: $CARGO_TARGET_DIR when set, as cargo itself does.
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
BIN = os.path.join(TARGET, "x86_64-unknown-linux-gnu/release/rtmp-server")
LOAD_BIN = os.path.join(TARGET, "x86_64-unknown-linux-gnu/release/rtmp-load")
TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stat_fields(path):
    """The fields of a /proc stat file after the command name (which may hold spaces)."""
    with open(path) as f:
        return f.read().rsplit(")", 1)[1].split()


def cpu_ticks(path):
    """utime + stime from a /proc stat file, in clock ticks."""
    fields = stat_fields(path)
    return int(fields[11]) + int(fields[12])


def stop(proc, sig, work):
    """Stops a server with `sig` (killing it after 20 s) and removes its work folder."""
    proc.send_signal(sig)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    shutil.rmtree(work, ignore_errors=True)


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            total += cpu_ticks(f"/proc/{pid}/stat")
        except FileNotFoundError:
            pass
    return total / TICKS


def thread_cpu_seconds(pid):
    """CPU seconds per thread name of `pid`: the ingest thread is the process's own name
    (`rtmp-server`), HTTP threads are `http`, the disk writer a `tokio-rt-worker`."""
    by_name = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            by_name[name] = by_name.get(name, 0) + cpu_ticks(f"/proc/{pid}/task/{tid}/stat") / TICKS
        except FileNotFoundError:
            pass
    return by_name


def machine_busy_seconds():
    """CPU seconds all cores spent busy (not idle or waiting for I/O), from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    # guest time is already counted in user.
    return (sum(fields[:8]) - idle) / TICKS


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def rss_bytes(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except FileNotFoundError:
            pass
    return total


def fetch(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def histogram_buckets(text, name):
    """(upper bound, cumulative count) of each bucket of histogram `name`."""
    buckets = []
    for line in text.splitlines():
        if line.startswith(name + "_bucket{le="):
            le = line.split('le="')[1].split('"')[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.split()[-1])))
    return buckets


def histogram_quantiles(text, name, before=None):
    """p50, p99 and the upper bound of the highest non-empty bucket, in ms, of what was
    observed between the snapshot `before` (a /metrics text) and `text`."""
    buckets = histogram_buckets(text, name)
    if before is not None:
        earlier = dict(histogram_buckets(before, name))
        buckets = [(le, count - earlier.get(le, 0)) for le, count in buckets]
    if not buckets or buckets[-1][1] == 0:
        return None
    total = buckets[-1][1]

    def quantile(q):
        for le, count in buckets:
            if count >= q * total:
                return le * 1000
        return float("inf")

    top = next(le for le, count in buckets if count == total) * 1000
    return quantile(0.5), quantile(0.99), top


def wait_http(url, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            fetch(url)
            return
        except Exception:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def start_loadgen(rtmp_url, args, n, duration, ramp, http_url=None):
    cmd = [LOAD_BIN, "--url", rtmp_url, "--file", args.file, "--streams", str(n),
           "--duration", str(duration), "--ramp", str(ramp)]
    if (args.viewers or args.ll_viewers) and http_url:
        cmd += ["--viewers", str(args.viewers), "--ll-viewers", str(args.ll_viewers),
                "--http", http_url]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def measure_rtmp_server(args, n, binary=BIN, extra=()):
    work = tempfile.mkdtemp(prefix="rtmp-load-")
    rtmp, http = free_port(), free_port()
    server = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--rtmp-port", str(rtmp), "--http-port", str(http),
         "--media-root", os.path.join(work, "media"), "--log-level", "warn",
         "--rtmp-max-connections", "10000", *extra],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "server.log"), "w"))
    try:
        base = f"http://127.0.0.1:{http}"
        wait_http(base + "/healthz")
        rss_before = rss_bytes([server.pid])
        ramp = max(1.0, n / 50)
        # Every stream has its first segments and full windows (the Low-Latency one keeps at
        # least seven segments, 14 s at 2 s) before the window measured.
        warmup = ramp + args.warmup
        duration = warmup + args.seconds + 2
        loadgen = start_loadgen(f"rtmp://127.0.0.1:{rtmp}/live", args, n, duration, ramp, base)
        time.sleep(warmup)
        load0 = loadavg()
        cpu0, t0 = cpu_seconds([server.pid]), time.monotonic()
        threads0 = thread_cpu_seconds(server.pid)
        tool0, busy0 = cpu_seconds([loadgen.pid]), machine_busy_seconds()
        text0 = fetch(base + "/metrics")
        segments0 = metric(text0, "rtmp_server_segments_total")
        rss_peak = 0
        next_report = args.rss_every
        while time.monotonic() - t0 < args.seconds:
            time.sleep(1)
            rss = rss_bytes([server.pid])
            rss_peak = max(rss_peak, rss)
            elapsed = time.monotonic() - t0
            if args.rss_every and elapsed >= next_report:
                next_report += args.rss_every
                held = metric(fetch(base + "/metrics"), "rtmp_server_segment_memory_bytes")
                cpu = 100 * (cpu_seconds([server.pid]) - cpu0) / elapsed / n
                print(f"    t={elapsed:5.0f} s  RSS {rss / 2**20:7.1f} MiB  "
                      f"({(rss - rss_before) / n / 2**20:.2f} MiB/stream, window "
                      f"{held / n / 2**20:.2f} MiB/stream)  CPU {cpu:.3f}%/stream", flush=True)
        cpu1, t1 = cpu_seconds([server.pid]), time.monotonic()
        threads1 = thread_cpu_seconds(server.pid)
        tool1, busy1 = cpu_seconds([loadgen.pid]), machine_busy_seconds()
        load1 = loadavg()
        ingest = threads1.get("rtmp-server", 0) - threads0.get("rtmp-server", 0)
        http_threads = threads1.get("http", 0) - threads0.get("http", 0)
        window = t1 - t0
        # /proc/stat and the per-process times are counted apart: a quiet machine can show a
        # few percent below zero.
        other = max(0.0, (busy1 - busy0) - (cpu1 - cpu0) - (tool1 - tool0))
        text = fetch(base + "/metrics")
        rss_end = rss_bytes([server.pid])
        segments1 = metric(text, "rtmp_server_segments_total")
        held = metric(text, "rtmp_server_segment_memory_bytes")
        spare = metric(text, "rtmp_server_segment_spare_bytes")
        out, _ = loadgen.communicate(timeout=duration + 60)
        lag = next((l.split("max", 1)[1].split("(")[0].strip() for l in out.splitlines()
                    if l.strip().startswith("lag")), "?")
        failed = next((l.strip() for l in out.splitlines() if l.strip().startswith("streams")), "")
        viewers = next((l.strip() for l in out.splitlines() if l.strip().startswith("viewers")),
                       "no viewers")
        ll_lines = [l.strip() for l in out.splitlines()
                    if l.strip().startswith(("LL ", "first LL error", "loadgen CPU"))]
        return {
            "http_pct": 100 * http_threads / window,
            "tool_pct": 100 * (tool1 - tool0) / window,
            "other_pct": 100 * other / window,
            "load": f"{load0} -> {load1}",
            "threads": {name: 100 * (threads1.get(name, 0) - threads0.get(name, 0)) / window
                        for name in threads1},
            "part_freshness": histogram_quantiles(text, "rtmp_server_part_publish_seconds", text0),
            "part_count": metric(text, "rtmp_server_part_publish_seconds_count")
            - metric(text0, "rtmp_server_part_publish_seconds_count"),
            "ll_lines": ll_lines,
            "n": n,
            "cpu_pct_per_stream": 100 * (cpu1 - cpu0) / (t1 - t0) / n,
            "cpu_pct_total": 100 * (cpu1 - cpu0) / (t1 - t0),
            "ingest_pct": 100 * ingest / (t1 - t0),
            "rss_mib_per_stream": (rss_end - rss_before) / n / 2**20,
            "rss_mib_total": rss_end / 2**20,
            "rss_peak_mib": rss_peak / 2**20,
            "window_mib_per_stream": held / n / 2**20,
            "spare_mib": spare / 2**20,
            "segments": segments1 - segments0,
            "expected": n * args.seconds / 2,
            "freshness": histogram_quantiles(text, "rtmp_server_segment_publish_seconds", text0),
            "lag": lag,
            "streams": failed,
            "viewers": viewers,
        }
    finally:
        stop(server, signal.SIGTERM, work)


NGINX_CONF = """
load_module {module};
worker_processes 1;
daemon off;
master_process on;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 10000; }}
rtmp {{
    server {{
        listen 127.0.0.1:{port};
        chunk_size 4096;
        application live {{
            live on;
            hls on;
            hls_path {work}/hls;
            hls_fragment 2s;
            hls_playlist_length 6s;
        }}
    }}
}}
"""


def ensure_nginx():
    module = "/usr/lib/nginx/modules/ngx_rtmp_module.so"
    if not (shutil.which("nginx") and os.path.exists(module)):
        print("installing nginx and libnginx-mod-rtmp for the comparison", file=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", "-qq", "nginx", "libnginx-mod-rtmp"],
                       check=True, stdout=subprocess.DEVNULL,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    return module


def nginx_pids(master):
    pids = [master]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(stat_fields(f"/proc/{entry}/stat")[1]) == master:
                    pids.append(int(entry))
            except (FileNotFoundError, ProcessLookupError):
                pass
    return pids


def measure_nginx(args, n, module):
    work = tempfile.mkdtemp(prefix="nginx-load-")
    os.makedirs(os.path.join(work, "hls"))
    port = free_port()
    conf = os.path.join(work, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(module=module, work=work, port=port))
    nginx = subprocess.Popen(["nginx", "-c", conf, "-p", work], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        pids = nginx_pids(nginx.pid)
        rss_before = rss_bytes(pids)
        ramp = max(1.0, n / 50)
        warmup = ramp + 8
        duration = warmup + args.seconds + 2
        loadgen = start_loadgen(f"rtmp://127.0.0.1:{port}/live", args, n, duration, ramp)
        time.sleep(warmup)
        pids = nginx_pids(nginx.pid)
        cpu0, t0 = cpu_seconds(pids), time.monotonic()
        time.sleep(args.seconds)
        cpu1, t1 = cpu_seconds(pids), time.monotonic()
        rss_end = rss_bytes(pids)
        out, _ = loadgen.communicate(timeout=duration + 60)
        streams = next((l.strip() for l in out.splitlines() if l.strip().startswith("streams")), "")
        return {
            "streams": streams,
            "n": n,
            "cpu_pct_per_stream": 100 * (cpu1 - cpu0) / (t1 - t0) / n,
            "cpu_pct_total": 100 * (cpu1 - cpu0) / (t1 - t0),
            "rss_mib_per_stream": (rss_end - rss_before) / n / 2**20,
            "rss_mib_total": rss_end / 2**20,
        }
    finally:
        stop(nginx, signal.SIGQUIT, work)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60, help="measuring window per run")
    p.add_argument("--streams", default="1,10,50,100,200", help="comma-separated stream counts")
    p.add_argument("--viewers", type=int, default=0, help="HLS viewers per stream")
    p.add_argument("--ll-viewers", type=int, default=0,
                   help="Low-Latency HLS viewers per stream (blocking reloads of llhls.m3u8)")
    p.add_argument("--file", default=os.path.join(ROOT, "testdata/flv/h264_720p30_3m.flv"))
    p.add_argument("--nginx", action="store_true", help="measure nginx-rtmp side by side")
    p.add_argument("--rss-every", type=float, default=0,
                   help="print the server's RSS and CPU every this many seconds of the window")
    p.add_argument("--warmup", type=float, default=20,
                   help="seconds after the streams started before the measuring window")
    p.add_argument("--variant", action="append", default=[],
                   help="NAME=BINARY[:ARG,ARG...]: measure this server build and options too")
    p.add_argument("--rounds", type=int, default=1, help="rounds over the variants")
    args = p.parse_args()
    if args.variant:
        return compare_variants(args)
    # The server and the load tool (a workspace member of its own).
    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "rtmp-server",
                    "-p", "rtmp-load"], cwd=ROOT, check=True)
    module = ensure_nginx() if args.nginx else None
    print(f"machine: {os.cpu_count()} cores; file {os.path.basename(args.file)}; "
          f"{args.seconds:.0f} s window; {args.viewers} viewers and {args.ll_viewers} "
          f"Low-Latency viewers per stream", flush=True)
    print(f"{'server':<12}{'N':>5}{'CPU%/stream':>12}{'CPU% all':>10}{'RSS/stream':>12}"
          f"{'window':>9}{'RSS all':>9}{'segments':>14}{'fresh p50/p99/max ms':>24}{'lag':>8}",
          flush=True)
    for n in [int(x) for x in args.streams.split(",")]:
        r = measure_rtmp_server(args, n)
        fresh = r["freshness"]
        fresh_text = "-" if fresh is None else f"{fresh[0]:.2f}/{fresh[1]:.2f}/{fresh[2]:.2f}"
        print(f"{'rtmp-server':<12}{n:>5}{r['cpu_pct_per_stream']:>11.3f}%{r['cpu_pct_total']:>9.1f}%"
              f"{r['rss_mib_per_stream']:>8.2f} MiB{r['window_mib_per_stream']:>5.2f} MiB"
              f"{r['rss_mib_total']:>5.0f} MiB{int(r['segments']):>7}/{int(r['expected']):<6}"
              f"{fresh_text:>24}{r['lag']:>8}", flush=True)
        if r["streams"] and " 0 failed" not in r["streams"]:
            print(f"    loadgen: {r['streams']}", flush=True)
        print(f"    ingest thread {r['ingest_pct']:.1f}% of a core; {r['spare_mib']:.1f} MiB of "
              f"spare segment buffers; {r['viewers']}", flush=True)
        viewers = n * (args.viewers + args.ll_viewers)
        per_thousand = (f", {r['http_pct'] * 1000 / viewers:.1f}% per 1,000 viewers"
                        if viewers else "")
        print(f"    HTTP threads {r['http_pct']:.1f}% of a core{per_thousand}; rtmp-load "
              f"{r['tool_pct']:.1f}%; other processes {r['other_pct']:.1f}%; load average "
              f"{r['load']}", flush=True)
        threads = ", ".join(f"{name} {pct:.1f}%" for name, pct in sorted(r["threads"].items()))
        print(f"    server threads over the window: {threads}", flush=True)
        if args.ll_viewers:
            fresh = r["part_freshness"]
            fresh_text = "-" if fresh is None else f"{fresh[0]:.2f}/{fresh[1]:.2f}/{fresh[2]:.2f}"
            print(f"    server part listed after its last frame (p50/p99/max bucket ms): "
                  f"{fresh_text} over {int(r['part_count'])} parts", flush=True)
            print("    rtmp-load, whole run:", flush=True)
            for line in r["ll_lines"]:
                print(f"      {line}", flush=True)
        if module:
            g = measure_nginx(args, n, module)
            print(f"{'nginx-rtmp':<12}{n:>5}{g['cpu_pct_per_stream']:>11.3f}%{g['cpu_pct_total']:>9.1f}%"
                  f"{g['rss_mib_per_stream']:>8.2f} MiB{'':>9}{g['rss_mib_total']:>5.0f} MiB", flush=True)
            if g["streams"] and " 0 failed" not in g["streams"]:
                print(f"    loadgen: {g['streams']}", flush=True)
            ratio = r["cpu_pct_per_stream"] / g["cpu_pct_per_stream"] if g["cpu_pct_per_stream"] else 0
            print(f"    rtmp-server uses {ratio:.2f}x nginx-rtmp's CPU per stream", flush=True)


def parse_variant(text):
    name, _, spec = text.partition("=")
    binary, _, extra = spec.partition(":")
    binary = binary or BIN
    if not os.path.isabs(binary):
        binary = os.path.join(ROOT, binary)
    return name, binary, [a for a in extra.split(",") if a]


def median(values):
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def compare_variants(args):
    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "rtmp-server",
                    "-p", "rtmp-load"], cwd=ROOT, check=True)
    variants = [parse_variant(v) for v in args.variant]
    print(f"machine: {os.cpu_count()} cores; file {os.path.basename(args.file)}; "
          f"{args.seconds:.0f} s window; {args.rounds} rounds over "
          + ", ".join(f"{name} ({os.path.relpath(b, ROOT)} {' '.join(e)})".rstrip()
                      for name, b, e in variants), flush=True)
    for n in [int(x) for x in args.streams.split(",")]:
        results = {name: [] for name, _, _ in variants}
        for round_ in range(args.rounds):
            # Alternate the order, so that a drift of the machine falls on every variant.
            order = variants if round_ % 2 == 0 else list(reversed(variants))
            for name, binary, extra in order:
                r = measure_rtmp_server(args, n, binary, extra)
                results[name].append(r)
                print(f"  N={n} round {round_ + 1} {name:<10} CPU {r['cpu_pct_per_stream']:.3f}%/stream "
                      f"(ingest thread {r['ingest_pct']:.1f}%, other processes "
                      f"{r['other_pct']:.1f}%), RSS {r['rss_mib_per_stream']:.2f} MiB/stream, "
                      f"held {r['window_mib_per_stream']:.2f} MiB/stream, "
                      f"segments {int(r['segments'])}/{int(r['expected'])}", flush=True)
        first = variants[0][0]
        base = median([r["cpu_pct_per_stream"] for r in results[first]])
        print(f"N={n}, medians over {args.rounds} rounds:", flush=True)
        for name, _, _ in variants:
            rs = results[name]
            cpu = median([r["cpu_pct_per_stream"] for r in rs])
            print(f"  {name:<10} CPU {cpu:.3f}%/stream ({cpu / base:.2f}x {first}), "
                  f"RSS {median([r['rss_mib_per_stream'] for r in rs]):.2f} MiB/stream, "
                  f"held {median([r['window_mib_per_stream'] for r in rs]):.2f} MiB/stream, "
                  f"CPU range {min(r['cpu_pct_per_stream'] for r in rs):.3f}-"
                  f"{max(r['cpu_pct_per_stream'] for r in rs):.3f}%", flush=True)


if __name__ == "__main__":
    main()
