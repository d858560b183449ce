#!/usr/bin/env python3
"""Measures what an RTMP player costs the server, side by side with nginx-rtmp: CPU and
memory per player of one live stream.

    scripts/play_cpu.py [--players 20] [--seconds 30] [--warmup 10] [--media-dir /dev/shm]
                        [--only rtmp-server|nginx-rtmp] [--json FILE] [--no-build]

It makes (once, with the system's ffmpeg, into $CARGO_TARGET_DIR/tls-media/ as
scripts/tls_cpu.py does) a 60 s 1280x720 30 fps H.264 file (x264 veryfast, 3000 kbit/s,
a keyframe every 2 s) with 128 kbit/s AAC. Then, for each server in turn:

- rtmp-server: the release binary (`cargo build --release` first, unless --no-build) on its
  defaults, free ports, a media root in a temporary folder (or under --media-dir);
- nginx-rtmp: Debian's nginx with libnginx-mod-rtmp (scripts/test.sh installs them), one
  master and one worker, application `live` with `live on`, HLS off, on a free port;

it publishes the file to `live/play` (`ffmpeg -re -stream_loop -1 -i FILE -c copy -f flv`),
waits --warmup seconds and measures the publish alone over --seconds (the baseline), then
starts N players (`ffmpeg -loglevel error -i rtmp://127.0.0.1:PORT/live/play -c copy -f null
-`), checks after --warmup seconds that they receive the stream, and measures again over
--seconds. Measured: the server's CPU (utime+stime from /proc/PID/stat, nginx's master and
worker summed) as ms of CPU per second of wall time (ms/s = tenths of a percent of a core),
its RSS (VmRSS from /proc/PID/status, summed likewise) at the end of each window, and what
each player reads per second (tcp_info's bytes_received, from `ss -tinp`). Per player: (with
players - baseline) / N for CPU; for RSS, (with players - a fresh publish-only run's RSS at
the same age) / N, since a server's memory grows for a while after a publish starts (HLS
windows filling). The ratio rtmp-server/nginx-rtmp of both follows.

A server whose players do not receive the stream (rtmp-server before it plays RTMP) is
reported as such, with the players' first error, and its per-player figures are left out;
the other server is still measured. It prints a table and the figures as JSON. Only the
Python standard library is used (and ffmpeg, nginx); figures are printed, never asserted.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load  # noqa: E402  (the shared measuring helpers)
import tls_cpu  # noqa: E402  (the 720p30 3 Mbit/s source file)

NGINX = "/usr/sbin/nginx"
NGINX_RTMP_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"
KEY = "play"
# A player that reads less than this over 2 s after the warm-up does not receive the
# stream (the source is about 3.15 Mbit/s, 790 kB in 2 s).
RECEIVING_BYTES = 100_000

NGINX_CONF = """\
load_module {module};
master_process on;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 10000; }}
rtmp {{
    access_log off;
    server {{
        listen 127.0.0.1:{port};
        chunk_size 4096;
        application live {{
            live on;
            record off;
            hls off;
        }}
    }}
}}
"""


def accepts(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def wait_port(proc, port, log, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}:\n{read(log)}")
        if accepts(port):
            return
        time.sleep(0.1)
    raise RuntimeError(f"port {port} did not accept within {timeout} s:\n{read(log)}")


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def alive(pid):
    return os.path.exists(f"/proc/{pid}")


class RtmpServer:
    name = "rtmp-server"

    def __init__(self, media_dir):
        if not os.access(load.BIN, os.X_OK):
            raise RuntimeError(f"{load.BIN} not found: build it with `cargo build --release`")
        self.work = tempfile.mkdtemp(prefix="play-cpu-", dir=media_dir)
        self.port, http = load.free_port(), load.free_port()
        self.log = os.path.join(self.work, "server.log")
        self.proc = subprocess.Popen(
            [load.BIN, "--bind", "127.0.0.1", "--rtmp-port", str(self.port),
             "--http-port", str(http), "--media-root", os.path.join(self.work, "media"),
             "--log-level", "warn", "--rtmp-max-connections", "10000"],
            stdout=subprocess.DEVNULL, stderr=open(self.log, "w"))
        try:
            load.wait_http(f"http://127.0.0.1:{http}/healthz")
        except Exception:
            self.stop()
            raise

    def pids(self):
        return [self.proc.pid]

    def stop(self):
        load.stop(self.proc, signal.SIGTERM, self.work)


class NginxRtmp:
    name = "nginx-rtmp"

    def __init__(self, media_dir):
        for path in (NGINX, NGINX_RTMP_MODULE):
            if not os.path.exists(path):
                raise RuntimeError(f"{path} not found: run scripts/test.sh, which installs "
                                   "nginx and libnginx-mod-rtmp")
        self.work = tempfile.mkdtemp(prefix="play-cpu-nginx-", dir=media_dir)
        self.log = os.path.join(self.work, "error.log")
        conf = os.path.join(self.work, "nginx.conf")
        for attempt in range(5):
            self.port = load.free_port()
            with open(conf, "w") as f:
                f.write(NGINX_CONF.format(module=NGINX_RTMP_MODULE, work=self.work,
                                          port=self.port))
            self.proc = subprocess.Popen(
                [NGINX, "-p", self.work, "-c", conf, "-e", self.log, "-g", "daemon off;"],
                stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.work, "stderr.log"), "w"))
            self.workers = []
            try:
                wait_port(self.proc, self.port, self.log)
                break
            except RuntimeError:
                self.stop(remove=False)
                if attempt == 4 or "Address already in use" not in read(self.log):
                    shutil.rmtree(self.work, ignore_errors=True)
                    raise
        # The worker is forked once the master has bound the port; wait for it too.
        deadline = time.time() + 10
        while len(self.pids()) < 2 and time.time() < deadline:
            time.sleep(0.1)
        self.workers = self.pids()[1:]

    def pids(self):
        return load.nginx_pids(self.proc.pid)

    def stop(self, remove=True):
        """SIGTERM (nginx's fast shutdown: workers exit at once), then SIGKILL by pid for
        the master and any worker still there."""
        workers = [p for p in self.workers if alive(p)] or self.pids()[1:]
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        deadline = time.time() + 10
        while any(alive(p) for p in workers) and time.time() < deadline:
            time.sleep(0.1)
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        if remove:
            shutil.rmtree(self.work, ignore_errors=True)


def publish(url, path):
    return subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1",
         "-i", path, "-c", "copy", "-f", "flv", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def play(url):
    return subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-i", url, "-c", "copy",
         "-f", "null", "-"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def stop_all(procs):
    """Stops ffmpeg processes (SIGTERM, then SIGKILL after 10 s); returns the last line of
    each one's stderr that said anything."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    errors = []
    for p in procs:
        try:
            _, err = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
        if err and err.strip():
            errors.append(err.strip().splitlines()[-1])
    return errors


def received(port):
    """Bytes each process has received on its TCP connections to 127.0.0.1:`port`, by pid
    (tcp_info's bytes_received, from `ss -tinp`): what a player has read from the server."""
    out = subprocess.run(["ss", "-tinpH", "state", "established", "dst", f"127.0.0.1:{port}"],
                         capture_output=True, text=True, check=True).stdout
    by_pid, pid = {}, None
    for line in out.splitlines():
        if not line.startswith((" ", "\t")):
            pid = next((int(f.split("=")[1]) for f in line.replace(",", " ").replace("(", " ")
                        .split() if f.startswith("pid=")), None)
        elif pid is not None:
            value = next((int(f.split(":")[1]) for f in line.split()
                          if f.startswith("bytes_received:")), 0)
            by_pid[pid] = by_pid.get(pid, 0) + value
    return by_pid


def window(server, seconds, players=()):
    """The server's CPU (ms per s) over `seconds`, its RSS (KiB) at the end, and the
    players' mean read rate (kbit/s) over the same window."""
    pids = server.pids()
    cpu0, t0 = load.cpu_seconds(pids), time.monotonic()
    read0, busy0 = received(server.port), load.machine_busy_seconds()
    time.sleep(seconds)
    cpu1, t1 = load.cpu_seconds(pids), time.monotonic()
    read1, busy1 = received(server.port), load.machine_busy_seconds()
    elapsed = t1 - t0
    read = sum(read1.get(p.pid, 0) - read0.get(p.pid, 0) for p in players)
    return {
        "cpu_ms_per_s": 1000 * (cpu1 - cpu0) / elapsed,
        "rss_kib": load.rss_bytes(server.pids()) / 1024,
        "machine_busy_pct": 100 * (busy1 - busy0) / elapsed,
        "player_kbit_per_s": 8 * read / elapsed / 1000 / len(players) if players else None,
        "seconds": elapsed,
    }


def measure(cls, args, path):
    """Baseline (publish only) and N players on one server; `error` says what failed."""
    result = {"server": cls.name, "error": None, "baseline": None, "players": None,
              "per_player": None}
    try:
        server = cls(args.media_dir)
    except Exception as e:  # noqa: BLE001  (reported, and the other server still measured)
        result["error"] = f"did not start: {e}"
        return result
    publisher, players = None, []
    try:
        url = f"rtmp://127.0.0.1:{server.port}/live/{KEY}"
        publisher = publish(url, path)
        published = time.monotonic()
        time.sleep(args.warmup)
        if publisher.poll() is not None:
            result["error"] = f"the publisher ended: {stop_all([publisher])[:1]}"
            return result
        result["baseline"] = window(server, args.seconds)
        print(f"{server.name}: baseline (publish only) {result['baseline']['cpu_ms_per_s']:.2f} "
              f"ms/s, RSS {result['baseline']['rss_kib'] / 1024:.1f} MiB", flush=True)

        players = [play(url) for _ in range(args.players)]
        time.sleep(args.warmup)
        before = received(server.port)
        time.sleep(2)
        after = received(server.port)
        receiving = [p for p in players if p.poll() is None
                     and after.get(p.pid, 0) - before.get(p.pid, 0) >= RECEIVING_BYTES]
        if not receiving:
            ended = sum(1 for p in players if p.poll() is not None)
            errors = stop_all(players)
            players = []
            first = f" (first error: {errors[0]})" if errors else ""
            result["error"] = (f"no player receives the stream: {ended} of {args.players} "
                               f"ended{first}; the server does not play RTMP")
            return result
        if len(receiving) < len(players):
            print(f"{server.name}: only {len(receiving)} of {len(players)} players receive the "
                  "stream; measuring those", flush=True)
        w = window(server, args.seconds, receiving)
        age = time.monotonic() - published
        w["players"] = len(receiving)
        w["players_ended_in_window"] = sum(1 for p in receiving if p.poll() is not None)
        result["players"] = w
        n, base = len(receiving), result["baseline"]
        stop_all(players)
        players = []
        # A server's memory grows for a while after a publish starts (HLS windows and their
        # buffers filling): the players' RSS is compared with a publish-only run of the same
        # age, not with the earlier baseline window.
        result["baseline"]["rss_kib_at_same_age"] = aged_rss(cls, args, path, age)
        result["per_player"] = {
            "cpu_ms_per_s": (w["cpu_ms_per_s"] - base["cpu_ms_per_s"]) / n,
            "rss_kib": (w["rss_kib"] - base["rss_kib_at_same_age"]) / n,
        }
        return result
    finally:
        errors = stop_all(players)
        if errors and result["error"] is None and result["players"]:
            result["players"]["errors"] = errors[:3]
        if publisher is not None:
            stop_all([publisher])
        server.stop()


def aged_rss(cls, args, path, age):
    """RSS (KiB) of a fresh server `age` seconds into a publish of `path`, with no player."""
    server = cls(args.media_dir)
    publisher = None
    try:
        publisher = publish(f"rtmp://127.0.0.1:{server.port}/live/{KEY}", path)
        time.sleep(age)
        return load.rss_bytes(server.pids()) / 1024
    finally:
        if publisher is not None:
            stop_all([publisher])
        server.stop()


def ratio(a, b):
    return a / b if b else None


def fmt(value, spec):
    return "-" if value is None else format(value, spec)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--players", type=int, default=20, help="RTMP players per server (N)")
    parser.add_argument("--seconds", type=float, default=30,
                        help="measuring window, for the baseline and for the players")
    parser.add_argument("--warmup", type=float, default=10,
                        help="seconds after the publisher starts, and after the players start, "
                             "before each window")
    parser.add_argument("--only", choices=[RtmpServer.name, NginxRtmp.name],
                        help="measure one server only")
    parser.add_argument("--media-dir", default=None,
                        help="folder for the servers' temporary folders (e.g. /dev/shm, to take "
                             "rtmp-server's HLS writes out of the noise)")
    parser.add_argument("--json", default=None, help="also write the JSON figures to this file")
    parser.add_argument("--no-build", action="store_true", help="skip `cargo build --release`")
    args = parser.parse_args()
    servers = [cls for cls in (RtmpServer, NginxRtmp) if args.only in (None, cls.name)]
    if RtmpServer in servers and not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "rtmp-server"],
                       cwd=load.ROOT, check=True)
    path = tls_cpu.make_media()
    with open("/proc/cpuinfo") as f:
        model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
    nginx_version = subprocess.run([NGINX, "-v"], capture_output=True, text=True).stderr.strip() \
        if os.path.exists(NGINX) else "no nginx"
    machine = f"{os.cpu_count()} cores ({model})"
    print(f"machine: {machine}; {nginx_version}; {os.path.basename(path)}; N={args.players}; "
          f"{args.seconds:.0f} s windows after {args.warmup:.0f} s", flush=True)

    results = {}
    for cls in servers:
        results[cls.name] = measure(cls, args, path)
        if results[cls.name]["error"]:
            print(f"{cls.name}: {results[cls.name]['error']}", flush=True)
        time.sleep(2)

    print()
    print(f"{'server':<12}{'players':>8}{'base ms/s':>10}{'with ms/s':>10}{'ms/s/player':>12}"
          f"{'base MiB':>9}{'with MiB':>9}{'KiB/player':>11}{'kbit/s/player':>14}"
          f"{'busy%':>7}")
    for name, r in results.items():
        base, w, per = r["baseline"] or {}, r["players"] or {}, r["per_player"] or {}
        print(f"{name:<12}{fmt(w.get('players'), 'd'):>8}{fmt(base.get('cpu_ms_per_s'), '.2f'):>10}"
              f"{fmt(w.get('cpu_ms_per_s'), '.2f'):>10}{fmt(per.get('cpu_ms_per_s'), '.3f'):>12}"
              f"{fmt(base.get('rss_kib') and base['rss_kib'] / 1024, '.1f'):>9}"
              f"{fmt(w.get('rss_kib') and w['rss_kib'] / 1024, '.1f'):>9}"
              f"{fmt(per.get('rss_kib'), '.0f'):>11}{fmt(w.get('player_kbit_per_s'), '.0f'):>14}"
              f"{fmt(w.get('machine_busy_pct'), '.0f'):>7}")
        if r["error"]:
            print(f"    {r['error']}")
        elif w.get("players_ended_in_window") or w.get("errors"):
            print(f"    players ended in the window: {w.get('players_ended_in_window')}; "
                  f"errors: {w.get('errors')}")
    ours = (results.get(RtmpServer.name) or {}).get("per_player")
    theirs = (results.get(NginxRtmp.name) or {}).get("per_player")
    ratios = None
    if ours and theirs:
        ratios = {"cpu_per_player": ratio(ours["cpu_ms_per_s"], theirs["cpu_ms_per_s"]),
                  "rss_per_player": ratio(ours["rss_kib"], theirs["rss_kib"])}
        print(f"rtmp-server/nginx-rtmp per player: CPU {fmt(ratios['cpu_per_player'], '.2f')}, "
              f"RSS {fmt(ratios['rss_per_player'], '.2f')}")
    elif len(servers) == 2:
        print("rtmp-server/nginx-rtmp: no ratio (a server has no per-player figures)")
    report = {
        "machine": machine,
        "nginx": nginx_version,
        "file": os.path.basename(path),
        "players": args.players,
        "seconds": args.seconds,
        "warmup": args.warmup,
        "units": {"cpu_ms_per_s": "ms of CPU per s of wall time", "rss_kib": "KiB",
                  "player_kbit_per_s": "what one player reads, kbit/s"},
        "servers": results,
        "ratio_rtmp_server_over_nginx": ratios,
    }
    print(json.dumps(report, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
