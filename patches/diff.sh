#!/usr/bin/env bash
# Regenerate patches/NAME.diff: each carried crate against its pristine copy in cargo's
# registry (a/ = upstream, b/ = ours; `patch -p1` applies it). See patches/README.md.
set -euo pipefail
cd "$(dirname "$0")"
registry=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/index.crates.io-*/ | head -1)
for crate in hyper:1.12.0 hyper-util:0.1.21 rustls:0.23.46; do
  name=${crate%%:*} version=${crate##*:}
  upstream=$registry$name-$version
  if [ ! -d "$upstream" ]; then
    echo "no $upstream: fetch it once, e.g. in an empty crate:" >&2
    echo "  cargo add $name@=$version && cargo fetch" >&2
    exit 1
  fi
  scratch=$(mktemp -d)
  ln -s "$upstream" "$scratch/a"
  ln -s "$PWD/$name" "$scratch/b"
  # Left out of the copies: dot-files, cargo's own files, README/CHANGELOG, build output,
  # lock files, rustls's test data. diff exits 1 when the trees differ; timestamps are
  # dropped from the file headers.
  (cd "$scratch" && diff -ru -x target -x Cargo.lock -x testdata -x '.*' -x Cargo.toml.orig \
      -x README.md -x CHANGELOG.md a/ b/ || [ $? -eq 1 ]) |
    sed -E 's/^(---|\+\+\+) ([^\t]+)\t.*/\1 \2/' > "$name.diff"
  rm -rf "$scratch"
  echo "$name.diff: $(grep -c '^[+-][^+-]' "$name.diff") changed lines"
done
