#!/usr/bin/env bash
# Issuer benchmarks (issue 15, BENCHMARKS.md "Issuer: token endpoint and jwt:local"):
#
#  A. `POST /oauth2/token` tokens/s, closed loop on CONNS keep-alive connections:
#     client_secret_basic (no client certificate) and tls_client_auth (form `client_id`,
#     the connection's certificate), each with the proxy's CPU per token.
#  B. an `["mtls", "jwt:local"]` route (token from this gateway, bound to the client
#     certificate, refreshed by the harness) vs an mTLS-only route: the same identity and
#     connection count, interleaved A/B/A/B, closed loop, then open loop at one fixed RATE
#     for both routes (0 = 70 % of the slower closed-loop median), proxy CPU per request.
#
#   RUNS=3 DUR=5s CONNS=64 CLIENT_THREADS="1 2" loadtest/compare/issuer.sh
#
# CLUSTER=1 adds `[cluster]` with a redis-server started here (REDIS_PORT): the token
# endpoint then asks the fleet-wide limiter in Redis on every request (issue 19);
# FIGURES=A runs figure A only. PC_BIN and LT_BIN (both) use those binaries, no build.
#
# One gateway, one listener (`client_auth = "optional"`: secret-only clients connect
# without a certificate), clients registered with `portcullis oauth client add` (generated
# secret, sha256 hash). The issuer's rate limits are raised to 1,000,000/s so they never
# cap the token rate. Backend: NGINX `return 200` as in run.sh (installed if missing), or
# BACKEND=echo for the in-process echo upstream (its CPU then counts as the gateway's).
# Every line carries the 1-minute load average: the machine may be shared. Everything
# lives in WORK; only 127.0.0.1. Not part of the test suite.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$ROOT/loadtest/compare"
RUNS=${RUNS:-3}                       # runs per figure, interleaved; medians reported
DUR=${DUR:-5s}                        # length of each timed run
CONNS=${CONNS:-64}                    # keep-alive connections
WORKERS=${WORKERS:-2}                 # gateway worker threads
CLIENT_THREADS=${CLIENT_THREADS:-"1 2"}   # load-client runtime threads; every figure per value
RATE=${RATE:-0}                       # figure B open loop (req/s); 0 = 70 % of closed loop
BACKEND=${BACKEND:-nginx}             # nginx | echo
CLIENTS=${CLIENTS:-1000}
CLUSTER=${CLUSTER:-0}                 # 1: [cluster] with a local redis-server
REDIS_PORT=${REDIS_PORT:-18379}
FIGURES=${FIGURES:-"A B"}
WORK=${WORK:-$(mktemp -d /tmp/portcullis-issuer.XXXXXX)}
OUT="$WORK/results"
PORT=${PORT:-18446}                   # the gateway's listener
BACKEND_PORT=${BACKEND_PORT:-18081}   # the NGINX backend (not run.sh's 18080: it may be running)
mkdir -p "$OUT"

if [ "$BACKEND" = nginx ] && ! command -v nginx >/dev/null; then
  echo "== installing nginx (the backend) from the Debian packages"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends nginx \
    || { $SUDO apt-get update -q; DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends nginx; }
fi

if [ -z "${LT_BIN:-}" ] || [ -z "${PC_BIN:-}" ]; then
  echo "== building release binaries"
  (cd "$ROOT" && cargo build --release --locked -p portcullis -p loadtest --bins)
fi
LT=${LT_BIN:-"$ROOT/target/release/loadtest"}
PC=${PC_BIN:-"$ROOT/target/release/portcullis"}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

echo "== PKI, signing key, client registry in $WORK"
PKI="$WORK/pki"
[ -d "$PKI" ] || "$LT" pki "$PKI" --clients "$CLIENTS" --revoked 0 > /dev/null
G="$WORK/portcullis"; mkdir -p "$G"
rm -rf "$G/oauth-keys" "$G/oauth-clients.toml" "$G/state"
"$PC" oauth keys rotate "$G/oauth-keys" 2> /dev/null
# Generated secrets (256 bits; only the sha256: hash is written). The certificate client
# accepts every identity of the benchmark PKI (URI SAN spiffe://loadtest.test/client/N).
SECRET=$("$PC" oauth client add "$G/oauth-clients.toml" bench-secret --scope bench/read 2> /dev/null)
"$PC" oauth client add "$G/oauth-clients.toml" bench-cert --scope bench/read \
    --uri-san 'spiffe://loadtest.test/client/*' > /dev/null 2>&1

if [ "$BACKEND" = nginx ]; then
  mkdir -p "$WORK/backend"
  sed -e "s|@WORK@|$WORK|g" -e "s|127.0.0.1:18080|127.0.0.1:$BACKEND_PORT|" \
      "$HERE/backend.conf" > "$WORK/backend/backend.conf"
  UPSTREAM="endpoints = [\"127.0.0.1:$BACKEND_PORT\"]
max_idle_per_endpoint = 128"
else
  UPSTREAM='builtin = "echo"'
fi
cat > "$G/portcullis.toml" <<EOF
[[listener]]
address = "127.0.0.1:$PORT"
cert = "$PKI/server/server.pem"
key = "$PKI/server/server.key"
client_auth = "optional"
workers = $WORKERS
max_connections = 30000
idle_timeout = "300s"
header_read_timeout = "300s"

[truststore]
dir = "$PKI/truststore"
revocation = "full-chain"

[[upstream]]
name = "backend"
$UPSTREAM

[[upstream]]
name = "auth"
builtin = "oauth2"

[[route]]
name = "token"
path_prefix = "/oauth2"
upstream = "auth"
auth = ["builtin"]

[[route]]
name = "jwt"
path_prefix = "/jwt"
upstream = "backend"
auth = ["mtls", "jwt:local"]
scopes = ["bench/read"]

[[route]]
name = "mtls"
path_prefix = "/"
upstream = "backend"

[auth.jwt.local]
local_issuer = true
token_use = "access"
forward_claims = { client_id = "x-client-id" }

[issuer.oauth2]
issuer = "https://auth.bench.test"
keys = "$G/oauth-keys"
clients_file = "$G/oauth-clients.toml"
state_dir = "$G/state"
# Raised far above the defaults (20/s per client, 50/s per address) so they never cap
# the benchmark: every request comes from one client id and one address.
rate_limit = { per_client = "1000000/s", per_address = "1000000/s", burst = 1000000 }

[log]
level = "warn"
access_log = "off"
EOF
if [ "$CLUSTER" = 1 ]; then
  command -v redis-server >/dev/null || { echo "CLUSTER=1 needs redis-server (apt-get install redis-server)"; exit 1; }
  printf '\n[cluster]\nredis_url = "redis://127.0.0.1:%s/0"\ntimeout = "200ms"\n' "$REDIS_PORT" >> "$G/portcullis.toml"
fi
"$PC" check --config "$G/portcullis.toml" > "$OUT/check.txt" 2>&1 \
  || { cat "$OUT/check.txt"; exit 1; }

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
if [ "$BACKEND" = nginx ]; then
  if ss -ltn | grep -q ":$BACKEND_PORT "; then
    echo "port $BACKEND_PORT is taken: set BACKEND_PORT"; exit 1
  fi
  nginx -p "$WORK/backend" -c "$WORK/backend/backend.conf" -g 'daemon off;' &
  NG=$!; PIDS+=("$NG")
  sleep 0.5
  kill -0 "$NG" 2>/dev/null || { echo "the nginx backend did not start"; exit 1; }
fi
if [ "$CLUSTER" = 1 ]; then
  if ss -ltn | grep -q ":$REDIS_PORT "; then echo "port $REDIS_PORT is taken: set REDIS_PORT"; exit 1; fi
  mkdir -p "$WORK/redis"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK/redis" > "$OUT/redis.log" 2>&1 &
  PIDS+=("$!")
  sleep 0.5
fi
if ss -ltn | grep -q ":$PORT "; then echo "port $PORT is taken: set PORT"; exit 1; fi
"$PC" run --config "$G/portcullis.toml" > "$OUT/gateway.log" 2>&1 &
GW=$!; PIDS+=("$GW")
for _ in $(seq 60); do ss -ltn | grep -q ":$PORT " && break; sleep 0.5; done
kill -0 "$GW" || { cat "$OUT/gateway.log"; exit 1; }

load() { cut -d' ' -f1 /proc/loadavg; }
# CPU clock ticks (USER_HZ = 100) of the gateway, all threads, from /proc.
ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$GW/stat"; }
BASE="https://127.0.0.1:$PORT"
TOKEN_FORM="grant_type=client_credentials"
ID0=("--cert" "$PKI/clients/client-0000.pem" "--key" "$PKI/clients/client-0000.key")

# measure NAME THREADS URL ARGS...: one timed run, the gateway's CPU added to NAME.json.
measure() {
  local name=$1 threads=$2 url=$3; shift 3
  local c0 c1 la
  la=$(load); c0=$(ticks)
  "$LT" run "$url" --ca "$PKI/ca-bundle.pem" --server-name localhost --threads "$threads" \
      -c "$CONNS" -d "$DUR" -q --json "$OUT/$name.json" "$@" > "$OUT/$name.txt"
  c1=$(ticks)
  python3 - "$OUT/$name.json" "$c0" "$c1" "$la" <<'PY'
import json, sys
p, c0, c1, la = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
r = json.load(open(p)); r["proxy_cpu_s"] = (c1 - c0) / 100.0; r["load1"] = float(la)
json.dump(r, open(p, "w"))
n = max(r["requests"]["ok"], 1); c = r["client"]
print(f"   {p.rsplit('/', 1)[1][:-5]}: load {la}: {r['requests_per_s']:.0f}/s, "
      f"p99 {r['latency_ms']['p99']} ms, proxy CPU {r['proxy_cpu_s'] * 1e6 / n:.1f} us/request, "
      f"errors {r['requests']['errors']}, client CPU {c['cpu_s'] / r['duration_s'] / c['threads'] * 100:.0f}% "
      f"of {c['threads']} thread(s){' (BOTTLENECK)' if c['bottleneck'] else ''}")
PY
}
secret_run() { LOADTEST_BASIC_AUTH="bench-secret:$SECRET" measure "$@" --method POST --body "$TOKEN_FORM"; }
cert_run() {
  measure "$@" --method POST --body "$TOKEN_FORM&client_id=bench-cert" --identities "$PKI/clients"
}
jwt_run() {
  LOADTEST_CLIENT_SECRET="$SECRET" measure "$@" "${ID0[@]}" \
      --token-url "$BASE/oauth2/token" --client-id bench-secret --scope bench/read
}

# Warm-up: connections, backend pool, token cache.
"$LT" run "$BASE/" --ca "$PKI/ca-bundle.pem" --server-name localhost "${ID0[@]}" -c "$CONNS" -d 1s -q > /dev/null
for t in $CLIENT_THREADS; do
  echo "== client threads $t: A. token endpoint (closed loop, $CONNS keep-alive connections)"
  for i in $(seq "$RUNS"); do
    secret_run "t$t-token-secret-$i" "$t" "$BASE/oauth2/token"
    cert_run "t$t-token-cert-$i" "$t" "$BASE/oauth2/token"
  done
  [[ " $FIGURES " == *" B "* ]] || continue
  echo "== client threads $t: B. mTLS only vs mTLS + jwt:local, closed loop"
  for i in $(seq "$RUNS"); do
    measure "t$t-closed-mtls-$i" "$t" "$BASE/" "${ID0[@]}"
    jwt_run "t$t-closed-jwt-$i" "$t" "$BASE/jwt"
  done
  rate=$RATE
  if [ "$rate" = 0 ]; then
    rate=$(python3 - "$OUT" "$t" <<'PY'
import glob, json, os, statistics, sys
out, t = sys.argv[1], sys.argv[2]
med = lambda m: statistics.median(json.load(open(f))["requests_per_s"]
                                  for f in glob.glob(os.path.join(out, f"t{t}-closed-{m}-*.json")))
print(int(0.7 * min(med("mtls"), med("jwt"))))
PY
)
  fi
  echo "$rate" > "$OUT/t$t-rate"
  echo "== client threads $t: B. the same at a fixed $rate req/s (open loop)"
  for i in $(seq "$RUNS"); do
    measure "t$t-rate-mtls-$i" "$t" "$BASE/" "${ID0[@]}" --rate "$rate"
    jwt_run "t$t-rate-jwt-$i" "$t" "$BASE/jwt" --rate "$rate"
  done
done
kill "$GW"; wait "$GW" 2>/dev/null || true

python3 - "$OUT" "$CONNS" "$CLIENT_THREADS" <<'PY' | tee "$OUT/table.md"
import glob, json, os, statistics, sys
out, conns, threads = sys.argv[1], sys.argv[2], sys.argv[3].split()
med = statistics.median
def runs(name):
    return [json.load(open(f)) for f in sorted(glob.glob(os.path.join(out, f"{name}-*.json")))]
def cpu_us(r):
    return r["proxy_cpu_s"] / max(r["requests"]["ok"], 1) * 1e6
def client_pct(r):
    c = r["client"]; return c["cpu_s"] / r["duration_s"] / c["threads"] * 100
def row(rs):
    return dict(rate=med(r["requests_per_s"] for r in rs), cpu=med(cpu_us(r) for r in rs),
                p99=med(r["latency_ms"]["p99"] for r in rs),
                errors=sum(r["requests"]["errors"] for r in rs),
                client=max(client_pct(r) for r in rs),
                bottleneck=sum(r["client"]["bottleneck"] for r in rs),
                runs=" / ".join(f"{cpu_us(r):.1f}" for r in rs),
                load=" / ".join(f"{r['load1']:.1f}" for r in rs))
for t in threads:
    print(f"\n### load client on {t} thread(s), {conns} keep-alive connections\n")
    print("| token endpoint | tokens/s | proxy CPU per token (µs) | tokens per proxy CPU-second "
          "| p99 (ms) | errors | client CPU (max, % of its threads) | CPU per token, each run | load1 |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---|")
    for mode, label in [("secret", "client_secret_basic"), ("cert", "tls_client_auth")]:
        r = row(runs(f"t{t}-token-{mode}"))
        print(f"| {label} | {r['rate']:,.0f} | {r['cpu']:.1f} | {1e6 / r['cpu']:,.0f} | {r['p99']:.2f} "
              f"| {r['errors']} | {r['client']:.0f}{' (bottleneck)' if r['bottleneck'] else ''} "
              f"| {r['runs']} | {r['load']} |")
    if not os.path.exists(os.path.join(out, f"t{t}-rate")):
        continue  # FIGURES=A
    rate = open(os.path.join(out, f"t{t}-rate")).read().strip()
    print()
    print("| route | req/s | proxy CPU per request (µs) | vs mTLS | p99 (ms) | errors "
          "| client CPU (max, %) | CPU per request, each run | jwt/mTLS, each A/B pair | load1 |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---|---|")
    for loop, title in [("closed", "closed loop"), ("rate", f"fixed {int(rate):,} req/s")]:
        ms, js = runs(f"t{t}-{loop}-mtls"), runs(f"t{t}-{loop}-jwt")
        pairs = " / ".join(f"{cpu_us(j) / cpu_us(a):.2f}" for a, j in zip(ms, js))
        m = row(ms)
        for rs, label in [(ms, "mTLS only"), (js, "mTLS + jwt:local")]:
            r = row(rs)
            print(f"| {title}: {label} | {r['rate']:,.0f} | {r['cpu']:.1f} | {r['cpu'] / m['cpu']:.2f}× "
                  f"| {r['p99']:.2f} | {r['errors']} | {r['client']:.0f}"
                  f"{' (bottleneck)' if r['bottleneck'] else ''} | {r['runs']} "
                  f"| {pairs if rs is js else ''} | {r['load']} |")
PY
echo "== raw results in $OUT"
