#!/usr/bin/env bash
# The whole test suite, on a fresh machine with only the Rust toolchain: installs the
# outside clients the tests drive for real (curl, openssl) when they are missing, then
# runs every test of the workspace. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing test clients: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Python clients (PyJWT) in a venv of their own, pinned in tests/requirements.txt.
if [ -z "${PORTCULLIS_TEST_PYTHON:-}" ]; then
  if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv || {
      SUDO=""
      [ "$(id -u)" = 0 ] || SUDO="sudo"
      $SUDO apt-get update -q
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends python3-venv
      python3 -m venv .venv
    }
  fi
  .venv/bin/python -m pip install -q --disable-pip-version-check -r tests/requirements.txt
  export PORTCULLIS_TEST_PYTHON="$PWD/.venv/bin/python"
fi

cargo test --workspace --locked "$@"
