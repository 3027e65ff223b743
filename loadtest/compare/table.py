#!/usr/bin/env python3
"""Median of the runs per proxy and figure, and the portcullis/NGINX, portcullis/HAProxy
ratios, as a Markdown table. Usage: table.py RESULTS_DIR RUNS WORKERS CONNS HS_CONNS IDLE"""
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
ka = {p: load(p, "keepalive") for p in PROXIES}
fu = {p: load(p, "full") for p in PROXIES}
re_ = {p: load(p, "resume") for p in PROXIES}
figures.append((f"keep-alive req/s ({conns} conns)", "req/s",
                {p: med([r["requests_per_s"] for r in ka[p]]) for p in PROXIES}, True))
figures.append(("keep-alive p99", "ms",
                {p: med([r["latency_ms"]["p99"] for r in ka[p]]) for p in PROXIES}, False))
figures.append(("proxy CPU per keep-alive request", "µs",
                {p: med([per(r, r["requests"]["ok"]) for r in ka[p]]) for p in PROXIES}, False))
figures.append((f"full mTLS handshakes/s ({hs_conns} conns)", "hs/s",
                {p: med([r["handshakes"]["per_s"] for r in fu[p]]) for p in PROXIES}, True))
figures.append(("proxy CPU per full handshake + request", "µs",
                {p: med([per(r, r["requests"]["ok"]) for r in fu[p]]) for p in PROXIES}, False))
figures.append(("resumed handshakes/s", "hs/s",
                {p: med([r["handshakes"]["resumed"] / r["duration_s"] for r in re_[p]]) for p in PROXIES}, True))
figures.append(("proxy CPU per resumption-mode connection + request", "µs",
                {p: med([per(r, r["requests"]["ok"]) for r in re_[p]]) for p in PROXIES}, False))
figures.append(("share of resumption-mode handshakes resumed", "%",
                {p: med([100.0 * r["handshakes"]["resumed"] / max(1, r["handshakes"]["full"] + r["handshakes"]["resumed"]) for r in re_[p]]) for p in PROXIES}, True))
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


print(f"Median of {runs} runs; {workers} workers/threads per proxy; backend NGINX `return 200` (1 worker).\n")
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
    for kind, rs in (("keep-alive", ka[p]), ("full", fu[p]), ("resume", re_[p])):
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
