#!/usr/bin/env node
// kubo-rpc-client (the maintained JS client of kubo's /api/v0) against a running daemon.
//
//   node rpc_client.mjs <api url, e.g. http://127.0.0.1:5001> <file>
//       add <file> (CIDv1, also with a progress callback), cat it back, pin ls, block stat, dag put + dag get, id, version,
//       refs -r, refs local, dag resolve, pin update, repo version, swarm localAddrs, and
//       last stop (shutdown); print one JSON object with what each call returned. Exit 1 on
//       any error.
import fs from 'node:fs'
import { create } from 'kubo-rpc-client'

const [url, file] = process.argv.slice(2)
if (url == null || file == null) {
  console.error('usage: rpc_client.mjs <api url> <file>')
  process.exit(2)
}

const ipfs = create({ url })
const data = fs.readFileSync(file)
const out = {}

const added = await ipfs.add({ path: 'input.bin', content: data }, { cidVersion: 1 })
out.add = { cid: added.cid.toString(), size: added.size, path: added.path }

// The same add with a progress callback: kubo streams {"Name","Bytes"} lines as it reads.
const progress = []
const again = await ipfs.add({ path: 'input.bin', content: data }, {
  cidVersion: 1,
  progress: (bytes, path) => progress.push({ bytes, path })
})
out.addProgress = { cid: again.cid.toString(), calls: progress }

const chunks = []
for await (const c of ipfs.cat(added.cid)) chunks.push(c)
out.catEqual = Buffer.compare(Buffer.concat(chunks), data) === 0
const part = []
for await (const c of ipfs.cat(added.cid, { offset: 10, length: 100 })) part.push(c)
out.catSliceEqual = Buffer.compare(Buffer.concat(part), data.subarray(10, 110)) === 0

out.pins = []
for await (const p of ipfs.pin.ls({ type: 'recursive' })) out.pins.push({ cid: p.cid.toString(), type: p.type })

const stat = await ipfs.block.stat(added.cid)
out.blockStat = { cid: stat.cid.toString(), size: stat.size }

const dagCid = await ipfs.dag.put({ hello: 'world', n: [1, 2, 3] }, { storeCodec: 'dag-cbor', hashAlg: 'sha2-256' })
const got = await ipfs.dag.get(dagCid)
out.dag = { cid: dagCid.toString(), value: got.value }

const id = await ipfs.id()
out.id = { id: id.id.toString(), agentVersion: id.agentVersion, role: id.role, addresses: id.addresses.map(a => a.toString()) }

const v = await ipfs.version()
out.version = v.version

out.refs = []
for await (const r of ipfs.refs(added.cid, { recursive: true })) {
  if (r.err) throw new Error(`refs: ${r.err}`)
  out.refs.push(r.ref)
}
out.refsLocal = []
for await (const r of ipfs.refs.local()) out.refsLocal.push(r.ref)
out.resolve = (await ipfs.dag.resolve(`/ipfs/${added.cid}`)).cid.toString()
const small = await ipfs.add({ path: 'b.bin', content: 'b' }, { cidVersion: 1, pin: false })
out.pinUpdate = (await ipfs.pin.update(added.cid, small.cid)).map(c => c.toString())
out.small = small.cid.toString()
out.repoVersion = await ipfs.repo.version()
out.localAddrs = (await ipfs.swarm.localAddrs()).map(a => a.toString())
await ipfs.stop()
out.stopped = true

console.log(JSON.stringify(out))
