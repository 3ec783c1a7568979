#!/usr/bin/env bash
# A single-node Garage S3 server on loopback, for benchmarks that moto is too slow for
# (moto answers ~200 requests/s whatever their size).
#
#   eval "$(bash benches/garage.sh start)"   # builds Garage once (~10 min), starts it, creates
#                                            # bucket and key, prints the exports below
#   target/release/s3_promote_bench --endpoint "$GARAGE_ENDPOINT" --bucket "$GARAGE_BUCKET" --region garage
#   bash benches/garage.sh stop
#
# Exports: GARAGE_ENDPOINT, GARAGE_BUCKET, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
# AWS_EC2_METADATA_DISABLED. State lives in .interop/garage-run (deleted by `stop`).
# GARAGE_BIN may point at an existing `garage` binary.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
root="$here/.interop/garage"
run="$here/.interop/garage-run"
version="2.5.0"
port="${GARAGE_PORT:-3900}"
rpc_port="${GARAGE_RPC_PORT:-3901}"
bucket="${GARAGE_BUCKET:-promote-bench}"

garage_bin() {
  if [ -n "${GARAGE_BIN:-}" ]; then echo "$GARAGE_BIN"; return; fi
  if [ ! -x "$root/bin/garage" ]; then
    echo "building garage $version (once, ~10 min on 2 cores)..." >&2
    cargo install --quiet --locked garage --version "$version" --root "$root" >&2
  fi
  echo "$root/bin/garage"
}

case "${1:-}" in
start)
  bin="$(garage_bin)"
  mkdir -p "$run/meta" "$run/data"
  secret="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  cat >"$run/garage.toml" <<EOF
metadata_dir = "$run/meta"
data_dir = "$run/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$secret"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$port"
root_domain = ".s3.garage.localhost"
EOF
  g() { "$bin" -c "$run/garage.toml" "$@"; }
  g server >"$run/server.log" 2>&1 &
  echo $! >"$run/pid"
  for _ in $(seq 100); do
    if g status >/dev/null 2>&1; then break; fi
    sleep 0.2
  done
  node_id="$(g status 2>/dev/null | grep -Eo '^[0-9a-f]{16}' | head -1)"
  [ -n "$node_id" ] || { echo "garage did not start; see $run/server.log" >&2; exit 1; }
  g layout assign -z dc1 -c 10G "$node_id" >/dev/null
  g layout apply --version 1 >/dev/null
  keys="$(g key create bench-key)"
  key_id="$(echo "$keys" | awk -F': *' '/Key ID/ {print $2; exit}')"
  key_secret="$(echo "$keys" | awk -F': *' '/Secret key/ {print $2; exit}')"
  g bucket create "$bucket" >/dev/null
  g bucket allow --read --write --owner "$bucket" --key bench-key >/dev/null
  echo "export GARAGE_ENDPOINT=http://127.0.0.1:$port GARAGE_BUCKET=$bucket"
  echo "export AWS_ACCESS_KEY_ID=$key_id AWS_SECRET_ACCESS_KEY=$key_secret AWS_EC2_METADATA_DISABLED=true"
  ;;
stop)
  if [ -f "$run/pid" ]; then
    pid="$(cat "$run/pid")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -rf "$run"
  ;;
*)
  echo "usage: $0 start|stop" >&2
  exit 2
  ;;
esac
