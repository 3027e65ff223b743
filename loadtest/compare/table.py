#!/usr/bin/env python3
"""Median of the runs per proxy and figure, and the portcullis/NGINX, portcullis/HAProxy
ratios, as a Markdown table; the load-client thread counts are rows (one set of figures per
count). Usage: table.py RESULTS_DIR RUNS WORKERS CONNS HS_CONNS IDLE ["1 2"]"""
import glob
import json
import os
import statistics
import sys

out, runs, workers, conns, hs_conns, idle = sys.argv[1:7]
PROXIES = ["nginx", "haproxy", "portcullis"]


def load(proxy, kind):
    files = sorted(glob.glob(os.path.join(out, f"{proxy}-{kind}-*.json")))
    return [json.load(open(f)) for f in files]


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def per(r, n):
    return r["proxy_cpu_s"] / n * 1e6 if n else None


figures = []  # (label, unit, {proxy: value}, higher_is_better)
threads = (sys.argv[7] if len(sys.argv) > 7 else "1").split()


def per_req(r, key):
    n = r["requests"]["ok"]
    return r[key] / n if n and key in r else None


ka = fu = re_ = {}
for t in threads:
    tl = f"{t} client thread" + ("s" if t != "1" else "")
    ka = {p: load(p, f"keepalive-t{t}") for p in PROXIES}
    fu = {p: load(p, f"full-t{t}") for p in PROXIES}
    re_ = {p: load(p, f"resume-t{t}") for p in PROXIES}
    figures.append((f"keep-alive req/s ({conns} conns, {tl})", "req/s",
                    {p: med([r["requests_per_s"] for r in ka[p]]) for p in PROXIES}, True))
    figures.append((f"keep-alive p99 ({tl})", "ms",
                    {p: med([r["latency_ms"]["p99"] for r in ka[p]]) for p in PROXIES}, False))
    figures.append((f"proxy CPU per keep-alive request ({tl})", "µs",
                    {p: med([per(r, r["requests"]["ok"]) for r in ka[p]]) for p in PROXIES}, False))
    for key, what in [("proxy_ctxsw_voluntary", "voluntary context switches"),
                      ("proxy_ctxsw_involuntary", "involuntary context switches"),
                      ("proxy_migrations", "CPU migrations")]:
        figures.append((f"{what} per keep-alive request ({tl})", "/req",
                        {p: med([per_req(r, key) for r in ka[p]]) for p in PROXIES}, False))
    figures.append((f"full mTLS handshakes/s ({hs_conns} conns, {tl})", "hs/s",
                    {p: med([r["handshakes"]["per_s"] for r in fu[p]]) for p in PROXIES}, True))
    figures.append((f"proxy CPU per full handshake + request ({tl})", "µs",
                    {p: med([per(r, r["requests"]["ok"]) for r in fu[p]]) for p in PROXIES}, False))
    figures.append((f"resumed handshakes/s ({tl})", "hs/s",
                    {p: med([r["handshakes"]["resumed"] / r["duration_s"] for r in re_[p]]) for p in PROXIES}, True))
    figures.append((f"proxy CPU per resumption-mode connection + request ({tl})", "µs",
                    {p: med([per(r, r["requests"]["ok"]) for r in re_[p]]) for p in PROXIES}, False))
    figures.append((f"share of resumption-mode handshakes resumed ({tl})", "%",
                    {p: med([100.0 * r["handshakes"]["resumed"] / max(1, r["handshakes"]["full"] + r["handshakes"]["resumed"]) for r in re_[p]]) for p in PROXIES}, True))


def syscalls(p):
    """System calls per keep-alive request from the strace -c -f sample, if it ran."""
    f, j = os.path.join(out, f"{p}-strace.txt"), os.path.join(out, f"{p}-strace.json")
    if not (os.path.exists(f) and os.path.exists(j)):
        return None
    n = json.load(open(j))["requests"]["ok"]
    for line in open(f):
        cols = line.split()
        if cols and cols[-1] == "total":
            return int(cols[3]) / n if n else None
    return None


sc = {p: syscalls(p) for p in PROXIES}
if any(v is not None for v in sc.values()):
    figures.append(("system calls per keep-alive request (strace -c -f, own run)", "/req", sc, False))
idle_r = {}
idle_n = {}
for p in PROXIES:
    f = os.path.join(out, f"{p}-idle.json")
    if os.path.exists(f):
        r = json.load(open(f))
        n = r["requests"]["ok"]
        idle_n[p] = n
        idle_r[p] = (r["proxy_rss_peak_kib"] - r["proxy_rss_base_kib"]) / n if n else None
if idle_r:
    figures.append((f"RSS per idle mTLS connection ({idle} opened)", "KiB", idle_r, False))


def fmt(v):
    if v is None:
        return "–"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.2f}"


def ratio(a, b):
    return f"{a / b:.2f}×" if a is not None and b else "–"


print(f"Median of {runs} interleaved rounds; {workers} workers/threads per proxy; backend NGINX `return 200` (1 worker).\n")
print("| figure | unit | NGINX | HAProxy | portcullis | portcullis/NGINX | portcullis/HAProxy |")
print("|---|---|---:|---:|---:|---:|---:|")
for label, unit, v, _ in figures:
    print(f"| {label} | {unit} | {fmt(v.get('nginx'))} | {fmt(v.get('haproxy'))} | {fmt(v.get('portcullis'))} "
          f"| {ratio(v.get('portcullis'), v.get('nginx'))} | {ratio(v.get('portcullis'), v.get('haproxy'))} |")
print()
if idle_n:
    print("idle connections established: " + ", ".join(f"{p} {n}" for p, n in idle_n.items()))
bott = []
for p in PROXIES:
    for kind in ("keepalive", "full", "resume"):
        rs = load(p, kind)
        n = sum(1 for r in rs if r["client"]["bottleneck"])
        if n:
            bott.append(f"{p} {kind} {n}/{len(rs)}")
        errs = {}
        for r in rs:
            for k, c in r["errors"].items():
                errs[k] = errs.get(k, 0) + c
        if errs:
            print(f"errors {p} {kind}: {errs}")
print("load client CPU-bound (≥85 % of its thread) in: " + (", ".join(bott) if bott else "none"))

# Every round's CPU per keep-alive request, in the order run: how far one run is from the next.
print("\nproxy CPU per keep-alive request, every round (µs):\n")
extra = [p for p in ["portcullis-ws", "portcullis-b"] if load(p, f"keepalive-t{threads[0]}")]
everyone = PROXIES + [p for p in extra if p not in PROXIES]
print("| load client | " + " | ".join(everyone) + " |")
print("|---|" + "---|" * len(everyone))
for t in threads:
    cells = []
    for p in everyone:
        rs = load(p, f"keepalive-t{t}")
        cells.append(", ".join(f"{per(r, r['requests']['ok']):.1f}" for r in rs) or "–")
    print(f"| {t} thread{'s' if t != '1' else ''} | " + " | ".join(cells) + " |")


def beside(other, title, a, b):
    """portcullis and `other` from the same rounds, and both against NGINX and HAProxy."""
    print(f"\n{title}:\n")
    print(f"| figure | unit | {a} | {b} | {b}/{a} | {a}/NGINX | {b}/NGINX | {a}/HAProxy | {b}/HAProxy |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for t in threads:
        tl = f"{t} client thread" + ("s" if t != "1" else "")
        rows = {p: load(p, f"keepalive-t{t}") for p in ["nginx", "haproxy", "portcullis", other]}
        for label, unit, f in [
            (f"keep-alive req/s ({tl})", "req/s", lambda r: r["requests_per_s"]),
            (f"keep-alive p99 ({tl})", "ms", lambda r: r["latency_ms"]["p99"]),
            (f"proxy CPU per keep-alive request ({tl})", "µs", lambda r: per(r, r["requests"]["ok"])),
        ]:
            v = {p: med([f(r) for r in rs]) if rs else None for p, rs in rows.items()}
            pc, o, ng, ha = v["portcullis"], v[other], v["nginx"], v["haproxy"]
            print(f"| {label} | {unit} | {fmt(pc)} | {fmt(o)} | {ratio(o, pc)} | {ratio(pc, ng)} | "
                  f"{ratio(o, ng)} | {ratio(pc, ha)} | {ratio(o, ha)} |")


# portcullis in both runtime modes (PROXIES with portcullis-ws), from the same rounds.
if "portcullis-ws" in everyone:
    beside("portcullis-ws", "runtime modes, same rounds (per-core is the default; work-stealing = portcullis-ws)",
           "per-core", "work-stealing")
# A second build (PROXIES with portcullis-b), from the same rounds.
if "portcullis-b" in everyone:
    beside("portcullis-b", "a second build, same rounds (portcullis-b: PC_B_BIN with PC_B_ENV)", "A", "B")
