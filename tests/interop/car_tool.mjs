#!/usr/bin/env node
// CAR files through @ipld/car, to check ipfs-kit's CAR export and import against a JS implementation.
//
//   node car_tool.mjs write <out.car> [importer options] <path>
//       import <path> with ipfs-unixfs-importer (options as helia_import.mjs), write its blocks
//       as CAR v1 with the root CID as the only root (blocks in the order the importer made them);
//       print the root CID.
//   node car_tool.mjs read <in.car>
//       read a CAR (v1 or v2) with CarBlockIterator, verify every block's bytes against its CID,
//       print JSON {version, roots, blocks: [{cid, size}], verified, unverified}; exit 1 if any
//       block fails verification or the file does not parse.
import fs from 'node:fs'
import { pipeline } from 'node:stream/promises'
import { Readable } from 'node:stream'
import { CarWriter, CarBlockIterator } from '@ipld/car'
import { sha256, sha512 } from 'multiformats/hashes/sha2'
import { identity } from 'multiformats/hashes/identity'
import { equals } from 'multiformats/bytes'
import { parseArgs, importPath, OrderedBlockstore, USAGE_OPTIONS } from './import_lib.mjs'

const HASHERS = new Map([[sha256.code, sha256], [sha512.code, sha512], [identity.code, identity]])

function usage () {
  console.error(`usage: car_tool.mjs write <out.car> [options] <path> | read <in.car>\n${USAGE_OPTIONS}`)
  process.exit(2)
}

async function write (out, argv) {
  const { opts, rest } = parseArgs(argv)
  if (rest.length !== 1) usage()
  const store = new OrderedBlockstore()
  const root = await importPath(rest[0], opts, store)
  const { writer, out: bytes } = CarWriter.create([root])
  const done = pipeline(Readable.from(bytes), fs.createWriteStream(out))
  for (const block of store.blocks.values()) await writer.put(block)
  await writer.close()
  await done
  process.stdout.write(`${root}\n`)
}

async function read (file) {
  const it = await CarBlockIterator.fromIterable(fs.createReadStream(file))
  const roots = (await it.getRoots()).map(String)
  const blocks = []
  let verified = 0
  let unverified = 0
  const bad = []
  for await (const { cid, bytes } of it) {
    blocks.push({ cid: cid.toString(), size: bytes.length })
    const hasher = HASHERS.get(cid.multihash.code)
    if (!hasher) { unverified++; continue }
    const digest = await hasher.digest(bytes)
    if (equals(digest.bytes, cid.multihash.bytes)) verified++
    else bad.push(cid.toString())
  }
  process.stdout.write(JSON.stringify({ version: it.version, roots, blocks, verified, unverified, bad }) + '\n')
  if (bad.length) {
    console.error(`car_tool: ${bad.length} block(s) do not match their CID`)
    process.exit(1)
  }
}

const [cmd, ...args] = process.argv.slice(2)
try {
  if (cmd === 'write' && args.length >= 2) await write(args[0], args.slice(1))
  else if (cmd === 'read' && args.length === 1) await read(args[0])
  else usage()
} catch (e) {
  console.error(`car_tool: ${e.stack ?? e}`)
  process.exit(1)
}
