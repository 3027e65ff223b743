#!/usr/bin/env bash
# A/B one portcullis build against another, one figure at a time (BENCHMARKS.md, round 2).
# Keep each build as its own binary (cp target/release/portcullis /tmp/pc-a) and
# interleave: ab.sh cpu a /tmp/pc-a; ab.sh cpu b /tmp/pc-b; ab.sh cpu a /tmp/pc-a; ...
#
#   ab.sh setup                  PKI (1,000 clients), configs, NGINX backend on :18080
#   ab.sh cpu   LABEL BINARY     proxy CPU per request, 64 keep-alive connections, DUR (5s)
#   ab.sh rate  LABEL BINARY     the same at a fixed RATE (6000 req/s, open loop)
#   ab.sh ir    LABEL BINARY     user-space instructions per request under callgrind
#                                (N=3000 requests over 16 new connections, after 1,000 warm-up)
#   ab.sh idle  LABEL BINARY     RSS per idle mTLS connection (N=2000 held for HOLD=15s)
#
# Every line printed carries the 1-minute load average: the machine is shared.
# LT is the load client (default target/release/loadtest: keep ONE client binary for a
# whole A/B). Everything lives in WORK (default /tmp/portcullis-ab); only 127.0.0.1.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
W=${WORK:-/tmp/portcullis-ab}
PKI=$W/pki
LT=${LT:-$ROOT/target/release/loadtest}
CONF=${CONF:-$W/portcullis/portcullis.toml}
URL=${URL:-https://127.0.0.1:18445/}   # e.g. .../jwt with LT_EXTRA="--bearer TOKEN"
load() { cut -d' ' -f1 /proc/loadavg; }
stat_field() { awk -v f="$2" '{ sub(/.*\) /, ""); print $(f - 2) }' "/proc/$1/stat"; }
cpu_ticks() { echo $(( $(stat_field "$1" 14) + $(stat_field "$1" 15) )); }
# LT_EXTRA: more harness flags for every run (word-split), e.g. "--bearer $TOKEN" or
# "--sigv4-access-key AKID" (with LOADTEST_SIGV4_SECRET_KEY in the environment).
# shellcheck disable=SC2086
lt() { "$LT" run "$URL" --ca "$PKI/ca-bundle.pem" --identities "$PKI/clients" -q ${LT_EXTRA:-} "$@"; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

cmd=${1:?usage: ab.sh setup | cpu|rate|ir|idle LABEL BINARY}
if [ "$cmd" = setup ]; then
  mkdir -p "$W/backend" "$W/portcullis"
  [ -d "$PKI" ] || "$LT" pki "$PKI" --clients 1000 --revoked 1 > /dev/null
  for f in backend.conf portcullis.toml; do
    sed -e "s|@WORK@|$W|g" -e "s|@PKI@|$PKI|g" -e "s|@WORKERS@|2|g" \
        "$ROOT/loadtest/compare/$f" > "$W/${f%%.*}/$f"
  done
  nginx -p "$W/backend" -c "$W/backend/backend.conf"   # daemonizes; stop: nginx -s quit -p ... -c ...
  exit 0
fi
label=${2:?label}; bin=${3:?binary}
wait_port() { for _ in $(seq 120); do ss -ltn | grep -q ':18445 ' && return; sleep 0.5; done; exit 1; }

case $cmd in
cpu | rate)
  "$bin" run --config "$CONF" > "$W/$label.log" 2>&1 & pid=$!
  wait_port
  lt -c 64 -d 1s > /dev/null
  args=(-c 64 -d "${DUR:-5s}")
  [ "$cmd" = rate ] && args+=(--rate "${RATE:-6000}")
  la=$(load); c0=$(cpu_ticks $pid)
  lt --json "$W/$label.json" "${args[@]}" > /dev/null
  c1=$(cpu_ticks $pid); kill $pid; wait $pid 2>/dev/null || true
  python3 - "$W/$label.json" "$c0" "$c1" "$label" "$cmd" "$la" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); n = r["requests"]["ok"]
cpu = (int(sys.argv[3]) - int(sys.argv[2])) / 100  # USER_HZ
print(f"{sys.argv[4]} {sys.argv[5]} load {sys.argv[6]}: {r['requests_per_s']:.0f} req/s, "
      f"p99 {r['latency_ms']['p99']} ms, proxy CPU {cpu * 1e6 / n:.1f} us/request, "
      f"errors {r['requests']['errors']}, client CPU {r['client']['cpu_s']} s")
PY
  ;;
ir)
  out=$W/$label.callgrind; rm -f "$out"*
  valgrind --tool=callgrind --callgrind-out-file="$out" --dump-instr=no --dump-line=no \
      "$bin" run --config "$CONF" > "$W/$label.log" 2>&1 & pid=$!
  wait_port
  lt -c 16 -n 1000 > /dev/null
  callgrind_control -z $pid > /dev/null 2>&1
  la=$(load)
  lt -c 16 -n "${N:-3000}" --json "$W/$label.json" > /dev/null
  callgrind_control -d $pid > /dev/null 2>&1
  sleep 1; kill $pid; wait $pid 2>/dev/null || true
  ok=$(python3 -c "import json; print(json.load(open('$W/$label.json'))['requests']['ok'])")
  ir=$(awk '/^summary:/ {print $2}' "$out.1")
  echo "$label ir load $la: $((ir / ok)) instructions/request ($ir over $ok requests); annotate: callgrind_annotate --inclusive=yes $out.1"
  ;;
idle)
  "$bin" run --config "$CONF" > "$W/$label.log" 2>&1 & pid=$!
  wait_port
  lt -c 64 -d 1s > /dev/null; sleep 0.5
  rss() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }
  n=${N:-2000}; base=$(rss); peak=$base; la=$(load)
  lt --mode idle -c "$n" -d "${HOLD:-15s}" --json "$W/$label.json" > /dev/null & ltpid=$!
  while kill -0 $ltpid 2>/dev/null; do r=$(rss); [ "$r" -gt "$peak" ] && peak=$r; sleep 0.5; done
  wait $ltpid || true
  kill $pid; wait $pid 2>/dev/null || true
  ok=$(python3 -c "import json; print(json.load(open('$W/$label.json'))['requests']['ok'])")
  echo "$label idle load $la: $ok/$n held, RSS $base -> $peak KiB, $(awk -v p="$peak" -v b="$base" -v n="$n" 'BEGIN { printf "%.2f", (p - b) / n }') KiB/connection"
  ;;
*) echo "unknown command $cmd" >&2; exit 2 ;;
esac
