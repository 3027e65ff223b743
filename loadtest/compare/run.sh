#!/usr/bin/env bash
# Side-by-side benchmark: NGINX, HAProxy and portcullis terminating the same mTLS traffic
# in front of the same backend, measured with the same harness in interleaved rounds (each
# round runs every proxy once per figure), for each load-client thread count.
#
#   loadtest/compare/run.sh            # defaults below; override with env vars
#   RUNS=3 DUR=5s CONNS=64 IDLE=10000 WORKERS=2 loadtest/compare/run.sh
#
# Needs root (apt-get for nginx/haproxy, raising the fd limit). Everything it makes lives
# in $WORK (a fresh /tmp folder unless given); the results table is printed and written to
# $WORK/results/table.md. Not part of the test suite.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$ROOT/loadtest/compare"
RUNS=${RUNS:-3}            # runs per figure; the median is reported
DUR=${DUR:-5s}             # length of each timed run
CONNS=${CONNS:-64}         # keep-alive connections
HS_CONNS=${HS_CONNS:-16}   # concurrent connections for the handshake runs
IDLE=${IDLE:-10000}        # idle mTLS connections for the memory figure (capped by the fd limit)
IDLE_HOLD=${IDLE_HOLD:-30s}
CLIENTS=${CLIENTS:-1000}   # client identities
WORKERS=${WORKERS:-2}      # proxy worker processes / threads, the same for all three
CLIENT_THREADS=${CLIENT_THREADS:-"1 2"}   # load-client threads; each value is its own set of rows
WORK=${WORK:-$(mktemp -d /tmp/portcullis-compare.XXXXXX)}
# `portcullis-ws` adds portcullis in the work-stealing runtime (the same binary and config
# plus `[runtime] mode = "work-stealing"`, port 18448) to every round, so the two runtime
# modes are compared inside one run; its figures go to a table of their own.
# `portcullis-b` adds a second build in the same rounds (port 18449, the default config):
# PC_B_BIN (default PC_BIN), run with the environment PC_B_ENV ("K=V ..."), for an A/B of
# two builds against NGINX and HAProxy inside one run (BENCHMARKS.md, issue 17 step 5).
PROXIES=${PROXIES:-"nginx haproxy portcullis"}
MEASURES=${MEASURES:-"keepalive full resume syscalls idle auth"}   # a subset reruns only those figures
# Figure 6 at a fixed rate too (open loop): 0 = 70 % of the slowest route's closed-loop rate.
AUTH_RATE=${AUTH_RATE:-0}
# Added to every port (backend 18080, NGINX 18443, HAProxy 18444, portcullis 18445,
# 18448 and 18449) when
# those are taken on a shared machine.
PORT_OFFSET=${PORT_OFFSET:-0}
OUT="$WORK/results"
mkdir -p "$OUT"

# --- tools -------------------------------------------------------------------------------
if ! command -v nginx >/dev/null || ! command -v haproxy >/dev/null; then
  echo "== installing nginx and haproxy from the Debian packages"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends nginx haproxy
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)

# PC_BIN=/path/to/other/build for an A/B; with both PC_BIN and LT_BIN given, nothing is built.
if [ -z "${PC_BIN:-}" ] || [ -z "${LT_BIN:-}" ]; then
  echo "== building release binaries"
  (cd "$ROOT" && cargo build --release --locked -p portcullis -p loadtest --bins)
fi
LT=${LT_BIN:-"$ROOT/target/release/loadtest"}
PC=${PC_BIN:-"$ROOT/target/release/portcullis"}

# Room for 10,000 idle connections in the client and in each proxy.
ulimit -Hn 65536 2>/dev/null || true
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
# HAProxy reserves two descriptors per connection (client and server side).
HAPROXY_MAXCONN=$(( (NOFILE - 400) / 2 ))
[ "$HAPROXY_MAXCONN" -gt 60000 ] && HAPROXY_MAXCONN=60000
if [ "$IDLE" -gt $((HAPROXY_MAXCONN - 100)) ]; then
  echo "== fd limit $NOFILE (hard limit, cannot be raised here): idle connections $IDLE -> $((HAPROXY_MAXCONN - 100))"
  IDLE=$((HAPROXY_MAXCONN - 100))
fi
echo "== fd limit $NOFILE; HAProxy maxconn $HAPROXY_MAXCONN; idle connections $IDLE"

echo "== PKI: ECDSA P-256 root -> intermediate -> server + $CLIENTS clients, CRLs"
PKI="$WORK/pki"
"$LT" pki "$PKI" --clients "$CLIENTS" --revoked 1

# --- configs -----------------------------------------------------------------------------
mkdir -p "$WORK/backend" "$WORK/nginx" "$WORK/haproxy" "$WORK/portcullis"
for f in backend.conf nginx.conf haproxy.cfg portcullis.toml; do
  sed -e "s|@WORK@|$WORK|g" -e "s|@PKI@|$PKI|g" -e "s|@WORKERS@|$WORKERS|g" \
      -e "s|127.0.0.1:18080|127.0.0.1:$((18080 + PORT_OFFSET))|g" \
      -e "s|127.0.0.1:18443|127.0.0.1:$((18443 + PORT_OFFSET))|g" \
      -e "s|127.0.0.1:18444|127.0.0.1:$((18444 + PORT_OFFSET))|g" \
      -e "s|127.0.0.1:18445|127.0.0.1:$((18445 + PORT_OFFSET))|g" \
      -e "s|@NOFILE@|$NOFILE|g" -e "s|@HAPROXY_MAXCONN@|$HAPROXY_MAXCONN|g" \
      "$HERE/$f" > "$WORK/${f%%.*}/$f"
done
{ sed "s|127.0.0.1:$((18445 + PORT_OFFSET))|127.0.0.1:$((18448 + PORT_OFFSET))|" \
    "$WORK/portcullis/portcullis.toml"; printf '\n[runtime]\nmode = "work-stealing"\n'; } \
  > "$WORK/portcullis/work-stealing.toml"
sed "s|127.0.0.1:$((18445 + PORT_OFFSET))|127.0.0.1:$((18449 + PORT_OFFSET))|" \
  "$WORK/portcullis/portcullis.toml" > "$WORK/portcullis/b.toml"

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$NGINX" -p "$WORK/backend" -c "$WORK/backend/backend.conf" -g 'daemon off;' &
PIDS+=($!)
sleep 0.5

# The proxy's processes: itself and its children (NGINX's and HAProxy's workers).
procs_of() { echo "$1" $(ps -o pid= --ppid "$1"); }
# CPU seconds (user+system, all threads) of a process and its children, from /proc.
cpu_of() {
  local total=0 p
  for p in $(procs_of "$1"); do
    [ -r "/proc/$p/stat" ] || continue
    total=$(awk -v t="$total" '{ sub(/.*\) /, ""); print t + $12 + $13 }' "/proc/$p/stat")
  done
  echo "$total"   # in clock ticks (USER_HZ = 100)
}
# Voluntary and involuntary context switches and CPU migrations, summed over every thread
# of the process and its children (/proc/PID/task/TID/status and .../sched).
sched_of() {
  local p
  for p in $(procs_of "$1"); do
    cat /proc/"$p"/task/*/status 2>/dev/null | awk '/^voluntary_ctxt_switches/ {v += $2}
      /^nonvoluntary_ctxt_switches/ {n += $2} END {printf "%d %d ", v, n}'
    cat /proc/"$p"/task/*/sched 2>/dev/null | awk '/^se.nr_migrations/ {m += $3} END {printf "%d\n", m}'
  done | awk '{v += $1; n += $2; m += $3} END {print v + 0, n + 0, m + 0}'
}
# Resident memory (KiB) of a process and its children.
rss_of() {
  local total=0 p
  for p in $(procs_of "$1"); do
    [ -r "/proc/$p/status" ] || continue
    total=$((total + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status")))
  done
  echo "$total"
}

declare -A PID_OF
start_proxy() {
  case $1 in
    nginx) "$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' & ;;
    haproxy) "$HAPROXY" -db -f "$WORK/haproxy/haproxy.cfg" & ;;
    portcullis) "$PC" run --config "$WORK/portcullis/portcullis.toml" & ;;
    portcullis-ws) "$PC" run --config "$WORK/portcullis/work-stealing.toml" & ;;
    # shellcheck disable=SC2086
    portcullis-b) env ${PC_B_ENV:-} "${PC_B_BIN:-$PC}" run --config "$WORK/portcullis/b.toml" & ;;
  esac
  PID_OF[$1]=$!
  PIDS+=("$!")
}
has() { case " $MEASURES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
port_of() {
  case $1 in nginx) echo $((18443 + PORT_OFFSET)) ;; haproxy) echo $((18444 + PORT_OFFSET)) ;;
    portcullis) echo $((18445 + PORT_OFFSET)) ;; portcullis-ws) echo $((18448 + PORT_OFFSET)) ;;
    portcullis-b) echo $((18449 + PORT_OFFSET)) ;; esac
}
lt() {
  "$LT" run "$URL" --ca "$PKI/ca-bundle.pem" --identities "$PKI/clients" "$@"
}

# One timed harness run with the proxy's CPU and scheduling accounted: writes NAME.json
# (+ proxy_cpu_s, proxy_ctxsw_voluntary, proxy_ctxsw_involuntary, proxy_migrations).
measure() {
  local name=$1; shift
  local c0 c1 s0 s1
  c0=$(cpu_of "$PROXY_PID"); s0=$(sched_of "$PROXY_PID")
  lt --threads "$T" -q --json "$OUT/$name.json" "$@" > "$OUT/$name.txt"
  c1=$(cpu_of "$PROXY_PID"); s1=$(sched_of "$PROXY_PID")
  python3 - "$OUT/$name.json" "$c0" "$c1" "$s0" "$s1" <<'PY'
import json, sys
p, c0, c1 = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
s0, s1 = [list(map(int, a.split())) for a in sys.argv[4:6]]
r = json.load(open(p)); r["proxy_cpu_s"] = (c1 - c0) / 100.0
for k, a, b in zip(["voluntary", "involuntary"], s0, s1):
    r[f"proxy_ctxsw_{k}"] = b - a
r["proxy_migrations"] = s1[2] - s0[2]
json.dump(r, open(p, "w"))
PY
  tail -n +2 "$OUT/$name.txt" | sed -n '2,3p' | sed "s/^/   $name: /"
}

# Every proxy runs for the whole comparison (each on its own port, idle while another is
# measured), so a round can run every proxy once per figure: nginx, haproxy, portcullis,
# then again. Drift of the machine (other builds, thermal) then lands in every proxy's
# runs alike instead of in the ratios; the table reports medians over the rounds.
echo "== starting $PROXIES"
for proxy in $PROXIES; do start_proxy "$proxy"; done
sleep 1.5
for proxy in $PROXIES; do
  kill -0 "${PID_OF[$proxy]}" || { echo "$proxy did not start"; exit 1; }
  # warm-up: connections, upstream pool, caches
  URL="https://127.0.0.1:$(port_of "$proxy")/" lt -c "$CONNS" -d 1s -q > /dev/null
done
for T in $CLIENT_THREADS; do
  echo "== load client on $T thread(s)"
  for i in $(seq "$RUNS"); do
    for proxy in $PROXIES; do
      PROXY_PID=${PID_OF[$proxy]}
      URL="https://127.0.0.1:$(port_of "$proxy")/"
      has keepalive && measure "$proxy-keepalive-t$T-$i" -c "$CONNS" -d "$DUR"
      has full && measure "$proxy-full-t$T-$i" --mode new-conn -c "$HS_CONNS" -d "$DUR"
      # As many identities as connections, so every identity resumes its own session
      # after its first (full) handshake instead of 1,000 first handshakes in a row.
      has resume && measure "$proxy-resume-t$T-$i" --mode resume -c "$HS_CONNS" -d "$DUR" \
          --max-identities "$HS_CONNS"
    done
  done
done

# System calls per keep-alive request: `strace -c -f` on the proxy (every process) during a
# short run of its own, never during the timed runs (ptrace slows the proxy several-fold;
# only the counts are used). Skipped with a note where ptrace is refused.
if has syscalls; then
  for proxy in $PROXIES; do
    PROXY_PID=${PID_OF[$proxy]}
    URL="https://127.0.0.1:$(port_of "$proxy")/"
    args=(); for p in $(procs_of "$PROXY_PID"); do args+=(-p "$p"); done
    strace -c -f -o "$OUT/$proxy-strace.txt" "${args[@]}" 2> "$OUT/$proxy-strace.err" & SPID=$!
    sleep 1
    if ! kill -0 "$SPID" 2>/dev/null; then
      echo "   $proxy: strace refused ($(head -c 200 "$OUT/$proxy-strace.err")): no syscall figure"
      continue
    fi
    lt --threads 1 -q -c "$CONNS" -n "${STRACE_N:-5000}" --json "$OUT/$proxy-strace.json" > /dev/null
    kill -INT "$SPID"; wait "$SPID" 2>/dev/null || true
    echo "   $proxy-strace: $(tail -1 "$OUT/$proxy-strace.txt")"
  done
fi

if [ "$IDLE" -gt 0 ] && has idle; then
  for proxy in $PROXIES; do
    PROXY_PID=${PID_OF[$proxy]}
    URL="https://127.0.0.1:$(port_of "$proxy")/"
    base=$(rss_of "$PROXY_PID")
    lt --mode idle -c "$IDLE" -d "$IDLE_HOLD" -q --json "$OUT/$proxy-idle.json" > "$OUT/$proxy-idle.txt" &
    LTPID=$!
    peak=$base
    while kill -0 "$LTPID" 2>/dev/null; do
      r=$(rss_of "$PROXY_PID"); [ "$r" -gt "$peak" ] && peak=$r
      sleep 0.5
    done
    wait "$LTPID" || true
    python3 - "$OUT/$proxy-idle.json" "$base" "$peak" <<'PY'
import json, sys
p, base, peak = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = json.load(open(p)); r["proxy_rss_base_kib"] = base; r["proxy_rss_peak_kib"] = peak
json.dump(r, open(p, "w"))
PY
    echo "   $proxy-idle: $(grep requests "$OUT/$proxy-idle.txt"), RSS ${base} -> ${peak} KiB"
    sleep 2
  done
fi
for proxy in $PROXIES; do kill "${PID_OF[$proxy]}" 2>/dev/null || true; wait "${PID_OF[$proxy]}" 2>/dev/null || true; done
sleep 1

# --- 6: portcullis auth modes ------------------------------------------------------------
# mTLS+JWT and mTLS+SigV4 vs mTLS only, on one portcullis with three routes (same backend):
# `/` mTLS only, `/jwt` mTLS + an RS256 bearer token (local JWKS file), `/sigv4` mTLS + a
# SigV4 signature (credentials file). The key, token and secret are made here, in $WORK.
# Runs are interleaved (mtls, jwt, sigv4, mtls, ...) so contention hits all three alike.
# Then the same at one fixed rate for all three routes: in the closed loop, a route whose
# client side costs more (signing) runs slower, and a gateway serving fewer requests per
# wake-up spends more CPU per request for reasons unrelated to its auth code.
# A build without the authenticators refuses the config, and the figure is skipped.
T=${CLIENT_THREADS%% *}   # figure 6 runs with the first load-client setting
if has auth; then
  A="$WORK/portcullis/auth"; mkdir -p "$A"
  openssl genrsa -out "$A/jwt.key" 2048 2>/dev/null
  modulus=$(openssl rsa -in "$A/jwt.key" -noout -modulus | cut -d= -f2)
  python3 - "$A" "$modulus" <<'PY'
import base64, json, subprocess, sys, time
a, mod = sys.argv[1], sys.argv[2]
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
jwks = {"keys": [{"kty": "RSA", "kid": "bench", "alg": "RS256", "use": "sig",
                  "n": b64(bytes.fromhex(mod)), "e": "AQAB"}]}
json.dump(jwks, open(f"{a}/jwks.json", "w"))
now = int(time.time())
head = b64(json.dumps({"alg": "RS256", "kid": "bench", "typ": "JWT"}).encode())
body = b64(json.dumps({"iss": "https://issuer.bench.test", "aud": "bench", "sub": "client-1",
                       "client_id": "bench", "token_use": "access", "scope": "bench/read",
                       "iat": now, "exp": now + 86400}).encode())
sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", f"{a}/jwt.key"],
                     input=f"{head}.{body}".encode(), capture_output=True, check=True).stdout
open(f"{a}/token", "w").write(f"{head}.{body}.{b64(sig)}")
PY
  SIGV4_KEY=AKIDBENCHEXAMPLE
  SIGV4_SECRET=$(openssl rand -hex 20)
  ( umask 077
    printf '[[credential]]\naccess_key_id = "%s"\nsecret_access_key = "%s"\nprincipal = "bench"\n' \
      "$SIGV4_KEY" "$SIGV4_SECRET" > "$A/credentials.toml" )
  cat "$WORK/portcullis/portcullis.toml" - > "$A/portcullis.toml" <<EOF

[[route]]
name = "jwt"
path_prefix = "/jwt"
upstream = "backend"
auth = ["mtls", "jwt:bench"]

[[route]]
name = "sigv4"
path_prefix = "/sigv4"
upstream = "backend"
auth = ["mtls", "sigv4"]

[auth.jwt.bench]
issuer = "https://issuer.bench.test"
jwks_file = "$A/jwks.json"
algorithms = ["RS256"]
audiences = ["bench"]
token_use = "access"

[auth.sigv4]
region = "us-east-1"
service = "execute-api"
credentials_file = "$A/credentials.toml"
EOF
  if "$PC" check --config "$A/portcullis.toml" >/dev/null 2>&1; then
    echo "== 6: portcullis mTLS only vs mTLS+JWT vs mTLS+SigV4"
    "$PC" run --config "$A/portcullis.toml" &
    PROXY_PID=$!; PIDS+=("$PROXY_PID"); sleep 1.5
    kill -0 "$PROXY_PID" || { echo "portcullis (auth config) did not start"; exit 1; }
    BASE="https://127.0.0.1:$(port_of portcullis)"
    "$LT" run "$BASE/" --ca "$PKI/ca-bundle.pem" --identities "$PKI/clients" -c "$CONNS" -d 1s -q > /dev/null
    for i in $(seq "$RUNS"); do
      URL="$BASE/"; measure "auth-mtls-$i" -c "$CONNS" -d "$DUR"
      URL="$BASE/jwt"; measure "auth-jwt-$i" -c "$CONNS" -d "$DUR" --bearer "$(cat "$A/token")"
      URL="$BASE/sigv4"; LOADTEST_SIGV4_SECRET_KEY="$SIGV4_SECRET" measure "auth-sigv4-$i" \
          -c "$CONNS" -d "$DUR" --sigv4-access-key "$SIGV4_KEY"
    done
    rate=$AUTH_RATE
    if [ "$rate" = 0 ]; then
      rate=$(python3 - "$OUT" <<'PY'
import glob, json, os, statistics, sys
out = sys.argv[1]
med = lambda m: statistics.median(json.load(open(f))["requests_per_s"]
                                  for f in glob.glob(os.path.join(out, f"auth-{m}-*.json")))
print(int(0.7 * min(med(m) for m in ["mtls", "jwt", "sigv4"])))
PY
)
    fi
    echo "   fixed rate for all three routes: $rate req/s"
    for i in $(seq "$RUNS"); do
      URL="$BASE/"; measure "auth-rate-mtls-$i" -c "$CONNS" -d "$DUR" --rate "$rate"
      URL="$BASE/jwt"; measure "auth-rate-jwt-$i" -c "$CONNS" -d "$DUR" --rate "$rate" \
          --bearer "$(cat "$A/token")"
      URL="$BASE/sigv4"; LOADTEST_SIGV4_SECRET_KEY="$SIGV4_SECRET" measure "auth-rate-sigv4-$i" \
          -c "$CONNS" -d "$DUR" --rate "$rate" --sigv4-access-key "$SIGV4_KEY"
    done
    kill "$PROXY_PID"; wait "$PROXY_PID" 2>/dev/null || true
    python3 - "$OUT" "$rate" <<'PY' | tee "$OUT/auth.md"
import glob, json, os, statistics, sys
out, rate = sys.argv[1], sys.argv[2]
for prefix, title in [("auth", "closed loop, 64 connections"),
                      ("auth-rate", f"fixed rate {int(rate):,} req/s for every route")]:
    rows = {}
    for mode in ["mtls", "jwt", "sigv4"]:
        rs = [json.load(open(f))
              for f in sorted(glob.glob(os.path.join(out, f"{prefix}-{mode}-*.json")))]
        cpu = [r["proxy_cpu_s"] / max(r["requests"]["ok"], 1) * 1e6 for r in rs]
        rows[mode] = (statistics.median(r["requests_per_s"] for r in rs),
                      statistics.median(cpu),
                      statistics.median(r["latency_ms"]["p99"] for r in rs),
                      sum(r["requests"]["errors"] for r in rs))
    m = rows["mtls"]
    print(f"\n{title}:\n")
    print("| auth | req/s | vs mTLS | proxy CPU per request (us) | vs mTLS | p99 (ms) | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for mode, label in [("mtls", "mTLS only"), ("jwt", "mTLS + JWT (RS256, cached)"),
                        ("sigv4", "mTLS + SigV4")]:
        r = rows[mode]
        print(f"| {label} | {r[0]:,.0f} | {r[0] / m[0]:.2f}x | {r[1]:.1f} | {r[1] / m[1]:.2f}x "
              f"| {r[2]:.2f} | {r[3]} |")
PY
  else
    echo "== 6: skipped: this portcullis build refuses the jwt/sigv4 config:"
    "$PC" check --config "$A/portcullis.toml" || true
  fi
fi

python3 "$HERE/table.py" "$OUT" "$RUNS" "$WORKERS" "$CONNS" "$HS_CONNS" "$IDLE" "$CLIENT_THREADS" | tee "$OUT/table.md"
echo "== raw results in $OUT"
