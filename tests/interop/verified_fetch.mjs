#!/usr/bin/env node
// @helia/verified-fetch (Helia's fetch over trustless gateways: every block it is given is
// checked against its CID) against our gateway, and only it: a light Helia node whose one
// router names the gateway (`@helia/fallback-router`'s provider record) and whose one block broker is the trustless
// gateway client (raw blocks, `?format=raw`), no libp2p.
//
//   node verified_fetch.mjs <gateway url> <cid>[/path] [<first>-<last>]
//
// fetches ipfs://<cid>[/path] (the byte range with a Range header when given) and writes the
// body to stdout. Exit 1 with the status on stderr when the answer is not 2xx.
import { createHeliaLight } from 'helia'
import { fallbackRouter } from '@helia/fallback-router'
import { trustlessGatewayBlockBroker } from '@helia/trustless-gateway-client'
import { createVerifiedFetchWithHelia } from '@helia/verified-fetch'

const [gateway, path, range] = process.argv.slice(2)
if (gateway == null || path == null) {
  console.error('usage: verified_fetch.mjs <gateway url> <cid>[/path] [<first>-<last>]')
  process.exit(2)
}
const local = { allowLocal: true, allowInsecure: true }
const helia = createHeliaLight()
// The gateway as an ordinary router (Helia 7.1 waits forever when its only router is a
// fallback one): it names the gateway as the provider of every CID.
const gatewayRouter = fallbackRouter({ gateways: [gateway], shuffle: false })
helia.addRouter({
  name: 'ipfs-kit-gateway',
  findProviders: (cid, options) => gatewayRouter.findProviders(cid, options)
})
helia.addBlockBroker(trustlessGatewayBlockBroker(local))
await helia.start()
const verifiedFetch = await createVerifiedFetchWithHelia(helia)
const headers = range != null ? { Range: `bytes=${range}` } : {}
const res = await verifiedFetch(`ipfs://${path}`, { headers, signal: AbortSignal.timeout(60000) })
const body = Buffer.from(await res.arrayBuffer())
if (!res.ok) {
  console.error(`HTTP ${res.status}: ${body.toString().slice(0, 500)}`)
  process.exit(1)
}
// A pipe takes writes asynchronously: wait for all of it before exiting.
await new Promise((resolve, reject) => process.stdout.write(body, e => (e ? reject(e) : resolve())))
await verifiedFetch.stop()
await helia.stop()
process.exit(0)
