#!/usr/bin/env bash
# The whole test suite, on a fresh machine with only the Rust toolchain: installs the
# outside clients the tests drive for real (curl, openssl, redis-server, a Python venv with botocore)
# when they are missing, then
# runs every test of the workspace. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# promtool (tests/exposition.rs runs `promtool check metrics` on /metrics) ships in Debian's
# prometheus package.
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
# tests/cluster/ start a real Redis (redis-server on a free port, per test) for [cluster].
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing test clients: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Python clients (PyJWT, botocore, authlib, requests-oauthlib) and the Kubernetes schema
# validator (kubernetes-validate, for deploy/kubernetes/), pinned in tests/requirements.txt, in a
# project-local venv; the tests find its python through PORTCULLIS_TEST_PYTHON.
command -v python3 >/dev/null 2>&1 && python3 -c 'import venv, ensurepip' 2>/dev/null || {
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends python3 python3-venv
}
# Every pinned line must be installed (a venv made before a pin was added is refreshed).
missing_py=$(grep -v '^#' tests/requirements.txt | grep -vxF -f <(.venv/bin/python -m pip freeze 2>/dev/null) || true)
if [ ! -x .venv/bin/python ] || [ -n "$missing_py" ]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check -r tests/requirements.txt
fi
export PORTCULLIS_TEST_PYTHON="$PWD/.venv/bin/python"

cargo test --workspace --locked "$@"
