#!/usr/bin/env node
// Root CIDs from ipfs-unixfs-importer (the importer Helia uses) for local files and directories.
// Usage: node helia_import.mjs [options] <path>...   -> "<cid>\t<path>" per path on stdout.
import { parseArgs, importPath, USAGE_OPTIONS } from './import_lib.mjs'

let parsed
try {
  parsed = parseArgs(process.argv.slice(2))
} catch (e) {
  console.error(`helia_import: ${e.message}\n${USAGE_OPTIONS}`)
  process.exit(2)
}
if (parsed.rest.length === 0) {
  console.error(`usage: helia_import.mjs [options] <path>...\n${USAGE_OPTIONS}`)
  process.exit(2)
}
let failed = 0
for (const p of parsed.rest) {
  try {
    const cid = await importPath(p, parsed.opts, null)
    process.stdout.write(`${cid}\t${p}\n`)
  } catch (e) {
    console.error(`helia_import: ${p}: ${e.stack ?? e}`)
    process.stdout.write(`ERROR\t${p}\n`)
    failed++
  }
}
process.exit(failed ? 1 : 0)
