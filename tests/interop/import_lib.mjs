// Shared by helia_import.mjs and car_tool.mjs: walk a local file or directory into
// ipfs-unixfs-importer candidates and run the importer with options parsed from argv.
import fs from 'node:fs'
import path from 'node:path'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced, trickle } from 'ipfs-unixfs-importer/layout'

export const USAGE_OPTIONS = `options:
  --chunk-size N        fixed-size chunker (default 262144)
  --layout L            balanced (default) | trickle
  --max-children N      links per node (default 174, kubo's)
  --cid-version V       0 | 1 (default 1)
  --raw-leaves B        true | false (default true)
  --shard-strategy S    links-bytes (default, kubo v0.22) | block-bytes
  --reduce-single-leaf B  a one-chunk file is its leaf: true (default; kubo's balanced
                        layout) | false (kubo's trickle layout always makes a root node)
  --hidden              include dot-files (default: skip them, as kubo's add -r)`

// Splits argv into importer options and the remaining (positional) arguments.
export function parseArgs (argv) {
  const o = {
    chunkSize: 262144, layout: 'balanced', maxChildren: 174, cidVersion: 1,
    rawLeaves: true, shardStrategy: 'links-bytes', hidden: false, reduceSingleLeaf: true
  }
  const rest = []
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`)
      return argv[++i]
    }
    switch (a) {
      case '--chunk-size': o.chunkSize = Number(next()); break
      case '--layout': o.layout = next(); break
      case '--max-children': o.maxChildren = Number(next()); break
      case '--cid-version': o.cidVersion = Number(next()); break
      case '--raw-leaves': o.rawLeaves = next() === 'true'; break
      case '--shard-strategy': o.shardStrategy = next(); break
      case '--reduce-single-leaf': o.reduceSingleLeaf = next() === 'true'; break
      case '--hidden': o.hidden = true; break
      default:
        if (a.startsWith('--')) throw new Error(`unknown option ${a}`)
        rest.push(a)
    }
  }
  if (!['balanced', 'trickle'].includes(o.layout)) throw new Error(`bad --layout ${o.layout}`)
  if (![0, 1].includes(o.cidVersion)) throw new Error(`bad --cid-version ${o.cidVersion}`)
  return { opts: o, rest }
}

export function importerOptions (o) {
  const layout = o.layout === 'trickle'
    ? trickle({ maxChildrenPerNode: o.maxChildren, layerRepeat: 4 })
    : balanced({ maxChildrenPerNode: o.maxChildren })
  return {
    cidVersion: o.cidVersion,
    rawLeaves: o.rawLeaves,
    chunker: fixedSize({ chunkSize: o.chunkSize }),
    layout,
    shardSplitStrategy: o.shardStrategy,
    reduceSingleLeafToSelf: o.reduceSingleLeaf,
    wrapWithDirectory: false
  }
}

// Candidates for one input path, named relative to the path's parent (as kubo names them).
function * candidates (root, hidden) {
  const st = fs.lstatSync(root)
  if (st.isFile()) {
    yield { content: fs.createReadStream(root, { highWaterMark: 1 << 20 }) }
    return
  }
  if (!st.isDirectory()) throw new Error(`${root}: only a file or a directory can be the root`)
  const base = path.basename(root)
  function * walk (abs, rel) {
    yield { path: rel }
    const names = fs.readdirSync(abs).sort()
    for (const name of names) {
      if (!hidden && name.startsWith('.')) continue
      const a = path.join(abs, name)
      const r = `${rel}/${name}`
      const s = fs.lstatSync(a)
      if (s.isSymbolicLink()) yield { path: r, link: fs.readlinkSync(a) }
      else if (s.isDirectory()) yield * walk(a, r)
      else if (s.isFile()) yield { path: r, content: fs.createReadStream(a, { highWaterMark: 1 << 20 }) }
      else throw new Error(`${a}: unsupported file type`)
    }
  }
  yield * walk(root, base)
}

// A blockstore that remembers blocks in the order they were first put.
export class OrderedBlockstore {
  constructor () { this.blocks = new Map() }
  async put (cid, bytes) {
    const k = cid.toString()
    if (!this.blocks.has(k)) this.blocks.set(k, { cid, bytes })
    return cid
  }
}

// Imports one path; returns the root CID. `blockstore` may be null (blocks are dropped).
export async function importPath (p, o, blockstore) {
  const store = blockstore ?? { put: async (cid) => cid }
  const isDir = fs.lstatSync(p).isDirectory()
  const want = isDir ? path.basename(p) : undefined
  let root = null
  for await (const entry of importer(candidates(p, o.hidden), store, importerOptions(o))) {
    if (!isDir || entry.path === want) root = entry.cid
  }
  if (root == null) throw new Error(`${p}: the importer yielded no root`)
  return root
}
