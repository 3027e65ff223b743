#!/usr/bin/env bash
# CreateSession benchmark (issue 16, BENCHMARKS.md "Session issuer: CreateSession/s"):
# `POST /sessions` in a closed loop on CONNS keep-alive connections, with an ECDSA P-256 and
# an RSA 2048 leaf, interleaved, RUNS each, the gateway's CPU per session read from /proc.
#
#   RUNS=3 DUR=5s CONNS=16 loadtest/compare/createsession.sh
#
# Each run replays one request signed just before it (loadtest/compare/sessions.py, as
# iam-rolesanywhere-session signs; valid for max_skew): the gateway does all of its work
# for every one (the X.509 signature, the chain against the trust anchor with its CRL, a
# new sealed session and its audit line, here to nowhere). Every line carries the 1-minute
# load average: the machine may be shared. Everything lives in WORK; only 127.0.0.1. Needs
# the test venv's Python (scripts/test.sh makes .venv). Not part of the test suite.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$ROOT/loadtest/compare"
RUNS=${RUNS:-3}
DUR=${DUR:-5s}
CONNS=${CONNS:-16}
WORKERS=${WORKERS:-2}
THREADS=${THREADS:-1}                 # load-client runtime threads
PORT=${PORT:-18447}
PY=${PY:-$ROOT/.venv/bin/python}
WORK=${WORK:-$(mktemp -d /tmp/portcullis-sessions.XXXXXX)}
OUT="$WORK/results"
mkdir -p "$OUT"

if [ -z "${PC_BIN:-}" ]; then
  echo "== building release binaries"
  (cd "$ROOT" && cargo build --release --locked -p portcullis -p loadtest --bins)
fi
LT=${LT_BIN:-"$ROOT/target/release/loadtest"}
PC=${PC_BIN:-"$ROOT/target/release/portcullis"}

echo "== PKI (server, trust anchor, ECDSA and RSA leaves) and sealing key in $WORK"
[ -d "$WORK/pki" ] || "$LT" pki "$WORK/pki" --clients 1 --revoked 0 > /dev/null
[ -d "$WORK/anchor" ] || "$PY" "$HERE/sessions.py" pki "$WORK/anchor"
rm -rf "$WORK/session-keys" "$WORK/state"
"$PC" sessions keys rotate "$WORK/session-keys" 2> /dev/null
cat > "$WORK/portcullis.toml" <<EOF2
[[listener]]
address = "127.0.0.1:$PORT"
cert = "$WORK/pki/server/server.pem"
key = "$WORK/pki/server/server.key"
client_auth = "optional"
workers = $WORKERS
idle_timeout = "300s"

[truststore]
dir = "$WORK/pki/truststore"
revocation = "full-chain"

[[upstream]]
name = "rolesanywhere"
builtin = "rolesanywhere"

[[route]]
name = "sessions"
path_prefix = "/sessions"
upstream = "rolesanywhere"
auth = ["builtin"]

[issuer.sessions]
keys = "$WORK/session-keys"
state_dir = "$WORK/state"
region = "us-east-1"
account = "000000000000"

[[issuer.sessions.trust_anchor]]
name = "bench"
truststore = "$WORK/anchor/truststore"

[[issuer.sessions.profile]]
name = "bench"
roles = ["bench"]

[[issuer.sessions.role]]
name = "bench"
allow = [{ uri_san = "spiffe://bench.test/worker/*" }]

[log]
level = "warn"
access_log = "off"
EOF2
"$PC" check --config "$WORK/portcullis.toml" > "$OUT/check.txt" 2>&1 \
  || { cat "$OUT/check.txt"; exit 1; }
if ss -ltn | grep -q ":$PORT "; then echo "port $PORT is taken: set PORT"; exit 1; fi
"$PC" run --config "$WORK/portcullis.toml" > "$OUT/gateway.log" 2>&1 &
GW=$!
trap 'kill $GW 2>/dev/null || true' EXIT
for _ in $(seq 60); do ss -ltn | grep -q ":$PORT " && break; sleep 0.5; done
kill -0 "$GW" || { cat "$OUT/gateway.log"; exit 1; }

ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$GW/stat"; }
A=arn:aws:rolesanywhere:us-east-1:000000000000
BODY="{\"durationSeconds\":3600,\"profileArn\":\"$A:profile/bench\",\"roleArn\":\"arn:aws:iam::000000000000:role/bench\",\"trustAnchorArn\":\"$A:trust-anchor/bench\"}"
# run NAME KIND: sign, replay for DUR, add the gateway's CPU and the load to NAME.json.
run() {
  local name=$1 kind=$2 c0 c1 la
  local -a hs=()
  while IFS= read -r h; do hs+=(-H "$h"); done \
    < <("$PY" "$HERE/sessions.py" sign "$WORK/anchor" "$kind" "127.0.0.1:$PORT" x x x "$BODY")
  la=$(cut -d' ' -f1 /proc/loadavg); c0=$(ticks)
  "$LT" run "https://127.0.0.1:$PORT/sessions" --ca "$WORK/pki/ca-bundle.pem" \
      --server-name localhost --threads "$THREADS" -c "$CONNS" -d "$DUR" -q \
      --method POST --body "$BODY" "${hs[@]}" --json "$OUT/$name.json" > "$OUT/$name.txt"
  c1=$(ticks)
  python3 - "$OUT/$name.json" "$c0" "$c1" "$la" <<'PY'
import json, sys
p, c0, c1, la = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
r = json.load(open(p)); r["proxy_cpu_s"] = (c1 - c0) / 100.0; r["load1"] = float(la)
json.dump(r, open(p, "w"))
n = max(r["requests"]["ok"], 1); c = r["client"]
print(f"   {p.rsplit('/', 1)[1][:-5]}: load {la}: {r['requests_per_s']:.0f}/s, "
      f"p99 {r['latency_ms']['p99']} ms, gateway CPU {r['proxy_cpu_s'] * 1e6 / n:.0f} us/session, "
      f"errors {r['requests']['errors']}, client CPU {c['cpu_s'] / r['duration_s'] / c['threads'] * 100:.0f}%"
      f"{' (BOTTLENECK)' if c['bottleneck'] else ''}")
PY
}
echo "== CreateSession, closed loop, $CONNS keep-alive connections, $WORKERS gateway workers"
for i in $(seq "$RUNS"); do
  for kind in ec rsa; do run "$kind-$i" "$kind"; done
done
python3 - "$OUT" <<'PY' | tee "$OUT/table.md"
import glob, json, os, statistics, sys
out = sys.argv[1]
print("| leaf key | sessions/s (median) | gateway CPU per session (µs) | sessions per CPU-second "
      "| p99 (ms) | errors | sessions/s, each run | load1, each run |")
print("|---|---:|---:|---:|---:|---:|---|---|")
for kind, label in [("ec", "ECDSA P-256"), ("rsa", "RSA 2048")]:
    rs = [json.load(open(f)) for f in sorted(glob.glob(os.path.join(out, f"{kind}-*.json")))]
    cpu = statistics.median(r["proxy_cpu_s"] / max(r["requests"]["ok"], 1) * 1e6 for r in rs)
    rate = statistics.median(r["requests_per_s"] for r in rs)
    p99 = statistics.median(r["latency_ms"]["p99"] for r in rs)
    errors = sum(r["requests"]["errors"] for r in rs)
    each = " / ".join(f"{r['requests_per_s']:.0f}" for r in rs)
    load = " / ".join(f"{r['load1']:.1f}" for r in rs)
    print(f"| {label} | {rate:,.0f} | {cpu:.0f} | {1e6 / cpu:,.0f} | {p99:.2f} | {errors} | {each} | {load} |")
PY
echo "== raw results in $OUT"
