#!/usr/bin/env bash
# SigV4 with session credentials vs a static key vs mTLS only (issue 16, BENCHMARKS.md
# "SigV4 session credentials"): one gateway, three routes to the same NGINX backend, the
# same client identities and connection counts, the variants interleaved RUNS times.
#
#   MODE=ir RUNS=2 N=3000 loadtest/compare/sigv4_sessions.sh     # user-space instructions per
#                                                          # request under callgrind
#   MODE=rate RUNS=3 RATE=1500 DUR=5s loadtest/compare/sigv4_sessions.sh   # proxy CPU per request
#                                                          # at a fixed rate, 64 connections
#
# `/` is mTLS only; `/static` and `/session` are ["mtls", "sigv4"], signed by the harness
# (`--sigv4-access-key`, `--sigv4-session-token`) per request. The session is minted by the
# library (apart from CreateSession, so only verification is measured): `cargo test --test sigv4_sessions
# mint_for_benchmark -- --ignored` with the keys folder `portcullis sessions keys rotate`
# made. Ports PORT (18447) and BACKEND_PORT (18082), apart from ab.sh's and issuer.sh's.
# Everything lives in WORK; only 127.0.0.1. Not part of the test suite.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$ROOT/loadtest/compare"
MODE=${MODE:-ir}
RUNS=${RUNS:-2}
PORT=${PORT:-18447}
BACKEND_PORT=${BACKEND_PORT:-18082}
W=${WORK:-/tmp/portcullis-sessions}
LT=${LT:-$ROOT/target/release/loadtest}
PC=${PC_BIN:-$ROOT/target/release/portcullis}
PKI=$W/pki
S=$W/gateway
load() { cut -d' ' -f1 /proc/loadavg; }
stat_field() { awk -v f="$2" '{ sub(/.*\) /, ""); print $(f - 2) }' "/proc/$1/stat"; }
cpu_ticks() { echo $(( $(stat_field "$1" 14) + $(stat_field "$1" 15) )); }
wait_port() { for _ in $(seq 240); do ss -ltn | grep -q ":$PORT " && return; sleep 0.5; done; exit 1; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

mkdir -p "$S" "$W/backend"
[ -d "$PKI" ] || "$LT" pki "$PKI" --clients 1000 --revoked 0 > /dev/null
rm -rf "$S/state" "$S/session-keys"
"$PC" sessions keys rotate "$S/session-keys" 2> /dev/null
umask 077
printf '[[credential]]\naccess_key_id = "AKIDBENCHSTATIC"\nsecret_access_key = "bench-static-secret"\nprincipal = "svc-bench"\nattributes = { team = "bench" }\n' \
  > "$S/credentials.toml"
# MINT_BIN: an already-built tests/sigv4_sessions binary (skips cargo, e.g. while it is busy).
export PORTCULLIS_MINT_KEYS="$S/session-keys" PORTCULLIS_MINT_LEAF="$PKI/clients/client-0001.pem" \
  PORTCULLIS_MINT_OUT="$S/minted"
if [ -n "${MINT_BIN:-}" ]; then
  "$MINT_BIN" --ignored --exact bench_mint::mint_for_benchmark > /dev/null
else
  (cd "$ROOT" && cargo test -q --test sigv4_sessions mint_for_benchmark -- --ignored > /dev/null)
fi
read -r AKID SECRET TOKEN < "$S/minted"

sed -e "s|@WORK@|$W|g" -e "s|127.0.0.1:18080|127.0.0.1:$BACKEND_PORT|" \
    "$HERE/backend.conf" > "$W/backend/backend.conf"
sed -e "s|@PKI@|$PKI|g" -e "s|@WORKERS@|2|g" -e "s|127.0.0.1:18445|127.0.0.1:$PORT|" \
    -e "s|127.0.0.1:18080|127.0.0.1:$BACKEND_PORT|" "$HERE/portcullis.toml" > "$S/portcullis.toml"
cat >> "$S/portcullis.toml" <<EOF

[[route]]
name = "static"
path_prefix = "/static"
upstream = "backend"
auth = ["mtls", "sigv4"]

[[route]]
name = "session"
path_prefix = "/session"
upstream = "backend"
auth = ["mtls", "sigv4"]
[[route.allow]]
role = "bench-*"

[auth.sigv4]
region = "us-east-1"
service = "execute-api"
sessions = true
credentials_file = "$S/credentials.toml"

[issuer.sessions]
keys = "$S/session-keys"
state_dir = "$S/state"
region = "us-east-1"
account = "000000000000"

[[issuer.sessions.trust_anchor]]
name = "fleet"
truststore = "$PKI/truststore"

[[issuer.sessions.profile]]
name = "workers"
roles = ["bench-role"]

[[issuer.sessions.role]]
name = "bench-role"
allow = [{ uri_san = "spiffe://loadtest.test/client/*" }]
attributes = { team = "bench" }
EOF
"$PC" check --config "$S/portcullis.toml" > "$S/check.txt" 2>&1 || { cat "$S/check.txt"; exit 1; }
if ss -ltn | grep -q ":$BACKEND_PORT "; then echo "port $BACKEND_PORT is taken: set BACKEND_PORT"; exit 1; fi
nginx -p "$W/backend" -c "$W/backend/backend.conf"
trap 'nginx -s quit -p "$W/backend" -c "$W/backend/backend.conf" 2>/dev/null || true' EXIT

# lt VARIANT ARGS...: the harness against the variant's route, signed as it needs.
lt() {
  local v=$1; shift
  local sig=()
  case $v in
    mtls) path=/ ;;
    static) path=/static/x; sig=(--sigv4-access-key AKIDBENCHSTATIC --sigv4-secret-key bench-static-secret) ;;
    session) path=/session/x; sig=(--sigv4-access-key "$AKID" --sigv4-secret-key "$SECRET" --sigv4-session-token "$TOKEN") ;;
  esac
  "$LT" run "https://127.0.0.1:$PORT$path" --ca "$PKI/ca-bundle.pem" --identities "$PKI/clients" -q "${sig[@]}" "$@"
}

rm -f "$W/rate.txt"
for run in $(seq "$RUNS"); do
  for v in mtls static session; do
    label="$v-$run"
    case $MODE in
    ir)
      out=$W/$label.callgrind; rm -f "$out"*
      valgrind --tool=callgrind --callgrind-out-file="$out" --dump-instr=no --dump-line=no \
          "$PC" run --config "$S/portcullis.toml" > "$W/$label.log" 2>&1 & pid=$!
      wait_port
      lt "$v" -c 16 -n 1000 > /dev/null
      callgrind_control -z $pid > /dev/null 2>&1
      la=$(load)
      lt "$v" -c 16 -n "${N:-3000}" --json "$W/$label.json" > /dev/null
      callgrind_control -d $pid > /dev/null 2>&1
      sleep 1; kill $pid; wait $pid 2>/dev/null || true
      ok=$(python3 -c "import json; r = json.load(open('$W/$label.json'))['requests']; print(r['ok'], r['errors'])")
      ir=$(awk '/^summary:/ {print $2}' "$out.1")
      echo "$label ir load $la: $((ir / ${ok% *})) instructions/request ($ir over ${ok% *} requests, ${ok#* } errors)"
      ;;
    rate)
      "$PC" run --config "$S/portcullis.toml" > "$W/$label.log" 2>&1 & pid=$!
      wait_port
      lt "$v" -c 64 -d 1s > /dev/null
      la=$(load); c0=$(cpu_ticks $pid)
      lt "$v" --json "$W/$label.json" -c 64 -d "${DUR:-5s}" --rate "${RATE:-1500}" > /dev/null
      c1=$(cpu_ticks $pid); kill $pid; wait $pid 2>/dev/null || true
      python3 - "$W/$label.json" "$c0" "$c1" "$label" "$la" "$W/rate.txt" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); n = r["requests"]["ok"]
cpu = (int(sys.argv[3]) - int(sys.argv[2])) / 100  # USER_HZ
print(f"{sys.argv[4]} rate load {sys.argv[5]}: {r['requests_per_s']:.0f} req/s, "
      f"p99 {r['latency_ms']['p99']} ms, proxy CPU {cpu * 1e6 / n:.1f} us/request, "
      f"errors {r['requests']['errors']}, client CPU {r['client']['cpu_s']} s")
open(sys.argv[6], "a").write(f"{sys.argv[4]} {cpu * 1e6 / n:.1f}\n")
PY
      ;;
    *) echo "MODE is ir or rate" >&2; exit 2 ;;
    esac
  done
done

# Rate mode: the medians over rounds and each round's session/static ratio (only ratios
# within one run count on a shared machine).
if [ "$MODE" = rate ]; then
  python3 - "$W/rate.txt" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    label, cpu = line.split()
    v, n = label.rsplit("-", 1)
    runs.setdefault(v, {})[n] = float(cpu)
med = {v: statistics.median(r.values()) for v, r in runs.items()}
print("median CPU per request: " + ", ".join(f"{v} {m:.1f} us" for v, m in med.items()))
print(f"session / static: {med['session'] / med['static']:.3f} (medians); per round: "
      + " ".join(f"{runs['session'][n] / runs['static'][n]:.2f}" for n in sorted(runs['static'], key=int)))
PY
fi
