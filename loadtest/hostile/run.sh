#!/usr/bin/env bash
# Hostile-client figures: what a client holding a valid certificate can do to one gateway,
# and what a well-behaved client sees meanwhile. Not part of the test suite (the tests
# reproduce each attack in small; this measures it at size).
#
#   loadtest/hostile/run.sh                      # all figures, release build of this tree
#   PC_BIN=/path/to/portcullis FIGURES="slowloris idle" loadtest/hostile/run.sh
#
# Figures (FIGURES, default all):
#   slowloris  SLOW_N connections sending a request head one byte every 2 s
#   h2silent   H2_N connections with ALPN h2 that send nothing, then H2_N that send only
#              the preface and SETTINGS; how many are still open after H2_WAIT seconds
#              (the gateway runs with idle_timeout = 5s, header_read_timeout = 10s)
#   idle       IDLE idle mTLS connections (loadtest --mode idle) on a second listener with
#              idle_timeout = 300s: the gateway's open descriptors, RSS per connection
#   faults     one request per misbehaving backend (refused, reset, early close, hang,
#              garbage): its status; then a healthy request
#   tlsscan    sslscan's view of the listener (protocols, suites, groups)
# Results: printed, and $WORK/results.jsonl. Needs root for the fd limit; installs sslscan.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$ROOT/loadtest/hostile"
FIGURES=${FIGURES:-"slowloris h2silent idle faults tlsscan"}
SLOW_N=${SLOW_N:-500}
H2_N=${H2_N:-200}
H2_WAIT=${H2_WAIT:-22}
IDLE=${IDLE:-10000}
WORK=${WORK:-$(mktemp -d /tmp/portcullis-hostile.XXXXXX)}
mkdir -p "$WORK"
OUT="$WORK/results.jsonl"
: > "$OUT"

if [[ " $FIGURES " == *" tlsscan "* ]] && ! command -v sslscan >/dev/null; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends sslscan
fi
(cd "$ROOT" && cargo build --release --locked -p portcullis -p loadtest --bins)
LT="$ROOT/target/release/loadtest"
PC=${PC_BIN:-"$ROOT/target/release/portcullis"}
ulimit -Hn 65536 2>/dev/null || true
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

PKI="$WORK/pki"
[ -d "$PKI" ] || "$LT" pki "$PKI" --clients 2 --revoked 1
sed -e "s|@PKI@|$PKI|g" "$HERE/portcullis.toml" > "$WORK/portcullis.toml"

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
python3 "$HERE/backend.py" 18180 & PIDS+=($!)
"$PC" run --config "$WORK/portcullis.toml" 2> "$WORK/portcullis.log" & GW=$!; PIDS+=($GW)
for _ in $(seq 50); do curl -sf http://127.0.0.1:19446/readyz >/dev/null 2>&1 && break; sleep 0.2; done

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
closed() { curl -s http://127.0.0.1:19446/metrics | grep '^portcullis_connections_closed_total' || true; }
H="python3 $HERE/hostile.py --pki $PKI --port 18446"
for f in $FIGURES; do
  echo "== $f"
  case $f in
    slowloris) $H slowloris -n "$SLOW_N" --limit 60 | tee -a "$OUT" ;;
    h2silent)  $H h2silent -n "$H2_N" --limit "$H2_WAIT" | tee -a "$OUT"
               $H h2preface -n "$H2_N" --limit "$H2_WAIT" | tee -a "$OUT"
               closed ;;
    idle)
      before=$(rss_kib "$GW"); base=$(find "/proc/$GW/fd" -mindepth 1 | wc -l)
      "$LT" run https://127.0.0.1:18447/ --ca "$PKI/ca-bundle.pem" --identities "$PKI/clients" \
        --mode idle -c "$IDLE" -d 200s > "$WORK/idle.txt" 2>&1 &
      LTP=$!
      # Sample once the count of open descriptors has stopped growing (all handshakes done).
      open=0
      for _ in $(seq 90); do
        sleep 2; now=$(find "/proc/$GW/fd" -mindepth 1 | wc -l)
        [ "$now" -ge $((base + IDLE)) ] && break
        [ "$now" -gt $((base + IDLE / 2)) ] && [ "$now" -le "$open" ] && break
        open=$now
      done
      during=$(rss_kib "$GW"); open=$(find "/proc/$GW/fd" -mindepth 1 | wc -l)
      kill $LTP 2>/dev/null || true
      wait $LTP || true
      conns=$((open - base))
      printf '{"figure":"idle","requested":%s,"established":%s,"rss_before_kib":%s,"rss_during_kib":%s,"kib_per_conn":%s}\n' \
        "$IDLE" "$conns" "$before" "$during" "$(awk -v a="$before" -v b="$during" -v n="$conns" 'BEGIN {printf "%.1f", (n > 0 ? (b - a) / n : 0)}')" | tee -a "$OUT"
      ;;
    faults) $H faults | tee -a "$OUT" ;;
    tlsscan)
      sslscan --no-colour --show-certificate=no 127.0.0.1:18446 > "$WORK/sslscan.txt" 2>&1 || true
      grep -E 'enabled|Accepted|Preferred|^TLS|SSL|x25519|secp|MLKEM' "$WORK/sslscan.txt" | tee "$WORK/sslscan-summary.txt"
      ;;
  esac
done
kill -0 "$GW" && echo "gateway still running: yes" || echo "gateway still running: NO"
echo "results: $OUT"
