#!/usr/bin/env node
// A long-running real Helia node (Helia 7, bitswap 1.2.0) driven by commands on stdin, as
// kubo_serve.py drives kubo. Used by tests/tests/helia_bitswap.rs.
//
// Usage: node helia_peer.mjs   (Node >= 22; run from anywhere, modules resolve from this dir)
//
// Starts Helia with an in-memory blockstore and datastore, TCP on 127.0.0.1 (an OS-chosen
// port), noise, yamux, identify and ping only: no bootstrap, no mDNS, no DHT, no delegated
// routers, no autoTLS or UPnP, so it talks to nothing but the peers it is told to dial. Prints
// one JSON line {"ready": true, "id": ..., "addrs": [...]}, then reads one command per line and
// answers each with exactly one JSON line on stdout:
//
//   id                      {"id": "<peer id>", "addrs": ["<multiaddr>", ...]}
//   connect <multiaddr>     {"ok": true, "peer": "<peer id>"} | {"ok": false, "error": "..."}
//   peers                   {"peers": ["<peer id>", ...]}
//   ping <multiaddr>        {"ok": true, "ms": rtt}  (libp2p's ping service, one round trip)
//   add-file <path>         {"cid": "<root>"}  (unixfs addBytes: Helia's defaults)
//   add-dir <path>          {"cid": "<root>"}  (unixfs addAll of the tree, wrapped in a
//                                               directory; dot-files included)
//   cat <cid> <dest>        {"ok": true, "bytes": n, "seconds": s} (the file's bytes at <dest>)
//   ls <cid>                {"ok": true, "entries": [{"name", "cid", "type", "size"}, ...]}
//   get <cid> <dest>        {"ok": true, "files": n, "bytes": n, "seconds": s} (a file or a
//                           directory tree written at <dest>, through ls and cat)
//   quit                    {"bye": true}, then Helia stops and the process exits
//
// Every network operation has a deadline (TIMEOUT_MS); a failure answers {"ok": false,
// "error": "..."} and the process keeps serving. EOF on stdin acts as quit.

import { createWriteStream } from 'node:fs'
import { mkdir, readdir, readFile, stat } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { createInterface } from 'node:readline'
import { pipeline } from 'node:stream/promises'
import { Readable } from 'node:stream'

import { unixfs } from '@helia/unixfs'
import { identify } from '@libp2p/identify'
import { noise } from '@libp2p/noise'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { MemoryBlockstore } from 'blockstore-core'
import { createHelia } from 'helia'
import { CID } from 'multiformats/cid'

/** Deadline of one network command (dial, cat, ls, get). */
const TIMEOUT_MS = 60_000

/** Depth of directories `get` descends into (a bound on hostile DAGs). */
const GET_DEPTH_MAX = 64

function reply (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

function addrs (helia) {
  return helia.libp2p.getMultiaddrs().map(a => a.toString())
}

async function * walk (root, dir) {
  const entries = await readdir(dir, { withFileTypes: true })
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  for (const e of entries) {
    const full = join(dir, e.name)
    const path = relative(root, full)
    if (e.isDirectory()) {
      yield { path }
      yield * walk(root, full)
    } else if (e.isFile()) {
      yield { path, content: await readFile(full) }
    }
  }
}

async function catTo (fs, cid, dest, signal) {
  let bytes = 0
  const counted = async function * () {
    for await (const chunk of fs.cat(cid, { signal })) {
      bytes += chunk.length
      yield chunk
    }
  }
  await pipeline(Readable.from(counted()), createWriteStream(dest))
  return bytes
}

async function getTo (fs, cid, dest, signal, depth, totals) {
  if (depth > GET_DEPTH_MAX) {
    throw new Error(`deeper than ${GET_DEPTH_MAX} directories`)
  }
  const st = await fs.stat(cid, { signal })
  if (st.type === 'directory') {
    await mkdir(dest, { recursive: true })
    for await (const entry of fs.ls(cid, { signal })) {
      if (entry.name.includes('/') || entry.name === '..' || entry.name === '.' || entry.name === '') {
        throw new Error(`unsafe entry name ${JSON.stringify(entry.name)}`)
      }
      await getTo(fs, entry.cid, join(dest, entry.name), signal, depth + 1, totals)
    }
  } else {
    totals.bytes += await catTo(fs, cid, dest, signal)
    totals.files += 1
  }
}

async function main () {
  const helia = await createHelia({
    blockstore: new MemoryBlockstore(),
    routers: [],
    libp2p: {
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      peerDiscovery: [],
      services: { identify: identify(), ping: ping() }
    }
  })
  await helia.start()
  const fs = unixfs(helia)
  reply({ ready: true, id: helia.libp2p.peerId.toString(), addrs: addrs(helia) })

  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })
  for await (const line of lines) {
    const [cmd, ...args] = line.trim().split(/\s+/)
    if (cmd === '' || cmd === undefined) continue
    if (cmd === 'quit') break
    const started = performance.now()
    const seconds = () => (performance.now() - started) / 1000
    try {
      const signal = AbortSignal.timeout(TIMEOUT_MS)
      switch (cmd) {
        case 'id':
          reply({ id: helia.libp2p.peerId.toString(), addrs: addrs(helia) })
          break
        case 'connect': {
          const conn = await helia.libp2p.dial(multiaddr(args[0]), { signal })
          reply({ ok: true, peer: conn.remotePeer.toString() })
          break
        }
        case 'peers':
          reply({ peers: helia.libp2p.getPeers().map(p => p.toString()) })
          break
        case 'ping': {
          const ms = await helia.libp2p.services.ping.ping(multiaddr(args[0]), { signal })
          reply({ ok: true, ms })
          break
        }
        case 'add-file': {
          const cid = await fs.addBytes(await readFile(args[0]))
          reply({ cid: cid.toString() })
          break
        }
        case 'add-dir': {
          const st = await stat(args[0])
          if (!st.isDirectory()) throw new Error(`${args[0]} is not a directory`)
          let root = null
          for await (const entry of fs.addAll(walk(args[0], args[0]), { wrapWithDirectory: true })) {
            root = entry.cid
          }
          if (root == null) throw new Error('addAll returned nothing')
          reply({ cid: root.toString() })
          break
        }
        case 'cat': {
          const bytes = await catTo(fs, CID.parse(args[0]), args[1], signal)
          reply({ ok: true, bytes, seconds: seconds() })
          break
        }
        case 'ls': {
          const entries = []
          for await (const e of fs.ls(CID.parse(args[0]), { signal })) {
            entries.push({ name: e.name, cid: e.cid.toString(), type: e.type, size: Number(e.size ?? 0) })
          }
          reply({ ok: true, entries })
          break
        }
        case 'get': {
          const totals = { files: 0, bytes: 0 }
          await getTo(fs, CID.parse(args[0]), args[1], signal, 0, totals)
          reply({ ok: true, files: totals.files, bytes: totals.bytes, seconds: seconds() })
          break
        }
        default:
          reply({ ok: false, error: `unknown command ${cmd}` })
      }
    } catch (e) {
      reply({ ok: false, error: String(e?.message ?? e) })
    }
  }
  reply({ bye: true })
  await helia.stop()
  process.exit(0)
}

main().catch(e => {
  process.stderr.write(`helia_peer.mjs: ${e?.stack ?? e}\n`)
  reply({ ready: false, error: String(e?.message ?? e) })
  process.exit(1)
})
