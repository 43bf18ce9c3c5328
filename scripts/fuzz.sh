#!/usr/bin/env bash
# Runs each libFuzzer target (fuzz/) for a bounded time, starting from a copy of its checked-in
# corpus (fuzz/corpus/<target>: the repository is not changed). A crash fails the run and
# leaves its input in fuzz/artifacts/<target>/: add it to fuzz/corpus/<target>/ once fixed, and
# `cargo test -p bulkhead-fuzzing` keeps it fixed.
#   scripts/fuzz.sh [--seconds N (20)] [--keep] [target ...]   (targets: wire guard token archive)
# --keep merges what the run found into the checked-in corpus (minimized).
# cargo-fuzz needs nightly features; this machine's toolchain is stable, so the build sets
# RUSTC_BOOTSTRAP=1 (the stable compiler accepting them), for this build only.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
seconds=20; keep=0; targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(wire guard token archive)
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --quiet
export RUSTC_BOOTSTRAP=1
cd "$root/fuzz"
cargo fuzz build --release 2>&1 | grep -E "^(error|warning: unused)" >&2 || true
work=$(mktemp -d /tmp/bulkhead-fuzz-XXXXXX)
trap 'rm -rf "$work"' EXIT
for t in "${targets[@]}"; do
  mkdir -p "$work/$t"
  cp -r "corpus/$t/." "$work/$t/"
  echo "fuzz: $t for ${seconds}s" >&2
  cargo fuzz run --release "$t" "$work/$t" -- -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 2>"$work/$t.log" \
    || { tail -40 "$work/$t.log" >&2; echo "fuzz: $t failed; its input is in fuzz/artifacts/$t/" >&2; exit 1; }
  grep -E "^Done [0-9]+ runs" "$work/$t.log" | sed "s/^/fuzz: $t: /" >&2 || true
  if [ "$keep" = 1 ]; then
    cargo fuzz cmin --release "$t" "$work/$t" >/dev/null 2>&1 || true
    rm -rf "corpus/$t" && mkdir -p "corpus/$t" && cp -r "$work/$t/." "corpus/$t/"
  fi
done
