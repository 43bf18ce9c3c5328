#!/usr/bin/env bash
# Installs what is missing, builds Bulkhead, and runs `bulkhead up`: with no configuration it
# starts an embedded PostgreSQL in ./.bulkhead and the HTTP API on 127.0.0.1:8080.
# Extra arguments go to `bulkhead up` (e.g. --config bulkhead.toml, --data-dir DIR).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/setup.sh"
cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p bulkhead
exec "$root/target/release/bulkhead" up "$@"
