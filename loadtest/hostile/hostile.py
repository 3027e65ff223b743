#!/usr/bin/env python3
"""Hostile-client figures for one running gateway (see run.sh beside this file).

Each figure is a bounded attack from 127.0.0.1 with valid client certificates, and what a
well-behaved client sees while it runs. Prints one JSON object per figure.

  slowloris   N connections send a request head one byte every 2 s: how many the gateway
              closed, how long each lived, and a legitimate request's status meanwhile.
  h2silent    N connections negotiate h2 by ALPN and send nothing (or only the preface):
              how many are still open after a wait, and a legitimate request meanwhile.
  faults      requests through routes whose backends misbehave (refuse, reset, close
              early, hang, garbage): the status of each, and that the gateway still serves.
"""
import argparse, asyncio, json, os, ssl, sys, time

def ctx(pki, name, alpn):
    c = ssl.create_default_context(cafile=os.path.join(pki, "ca-bundle.pem"))
    c.check_hostname = False
    c.load_cert_chain(os.path.join(pki, "clients", f"{name}.pem"), os.path.join(pki, "clients", f"{name}.key"))
    c.set_alpn_protocols(alpn)
    return c

async def open_conn(host, port, c):
    return await asyncio.wait_for(asyncio.open_connection(host, port, ssl=c, server_hostname="localhost"), 10)

async def legit(host, port, c, path="/", hostname="localhost"):
    t = time.monotonic()
    try:
        r, w = await open_conn(host, port, c)
        w.write(f"GET {path} HTTP/1.1\r\nHost: {hostname}\r\nConnection: close\r\n\r\n".encode())
        await w.drain()
        line = await asyncio.wait_for(r.readline(), 35)
        w.close()
        return {"status": int(line.split()[1]) if line else None, "seconds": round(time.monotonic() - t, 3)}
    except Exception as e:  # noqa: BLE001 - the figure records what happened
        return {"status": None, "error": type(e).__name__, "seconds": round(time.monotonic() - t, 3)}

async def wait_closed(r, limit):
    t = time.monotonic()
    try:
        while time.monotonic() - t < limit:
            if not await asyncio.wait_for(r.read(4096), limit):
                return time.monotonic() - t
    except (asyncio.TimeoutError, ConnectionError, ssl.SSLError, OSError):
        pass
    return None if time.monotonic() - t >= limit else time.monotonic() - t

async def slowloris(a, c):
    head = b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 200
    lived, opened = [], 0
    async def one():
        nonlocal opened
        try:
            r, w = await open_conn(a.host, a.port, c)
        except Exception:  # noqa: BLE001
            return
        opened += 1
        t = time.monotonic()
        for b in head:
            try:
                w.write(bytes([b])); await w.drain()
            except (ConnectionError, ssl.SSLError, OSError):
                break
            if r.at_eof():
                break
            try:
                if await asyncio.wait_for(r.read(4096), 2) == b"":
                    break
            except asyncio.TimeoutError:
                pass
            except (ConnectionError, ssl.SSLError, OSError):
                break
            if time.monotonic() - t > a.limit:
                break
        lived.append(time.monotonic() - t)
        w.close()
    tasks = [asyncio.create_task(one()) for _ in range(a.n)]
    await asyncio.sleep(3)
    during = await legit(a.host, a.port, c)
    await asyncio.gather(*tasks)
    lived.sort()
    return {"figure": "slowloris", "connections": a.n, "opened": opened,
            "closed_by_gateway": sum(1 for x in lived if x < a.limit),
            "lived_median_s": round(lived[len(lived) // 2], 1) if lived else None,
            "lived_max_s": round(lived[-1], 1) if lived else None, "legit_during": during}

async def h2silent(a, c, preface):
    conns = []
    for _ in range(a.n):
        try:
            r, w = await open_conn(a.host, a.port, c)
            if preface:
                w.write(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
                await w.drain()
            conns.append((r, w))
        except Exception:  # noqa: BLE001
            pass
    results = await asyncio.gather(*(wait_closed(r, a.limit) for r, _ in conns))
    during = await legit(a.host, a.port, ctx(a.pki, "client-0001", ["http/1.1"]))
    for _, w in conns:
        w.close()
    closed = sorted(x for x in results if x is not None)
    return {"figure": "h2silent" + ("+preface" if preface else ""), "connections": a.n, "opened": len(conns),
            "open_after_s": a.limit, "still_open": len(conns) - len(closed),
            "closed_median_s": round(closed[len(closed) // 2], 1) if closed else None,
            "legit_after": during}

async def faults(a, c):
    out = {"figure": "faults"}
    for name in a.fault_routes.split(","):
        out[name] = await legit(a.host, a.port, c, path=f"/{name}/x")
    out["healthy_after"] = await legit(a.host, a.port, c, path="/")
    return out

def main():
    p = argparse.ArgumentParser()
    p.add_argument("figure", choices=["slowloris", "h2silent", "h2preface", "faults"])
    p.add_argument("--pki", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("-n", type=int, default=200)
    p.add_argument("--limit", type=float, default=30.0, help="seconds an attack connection may live")
    p.add_argument("--fault-routes", default="refuse,reset,early,hang,garbage")
    a = p.parse_args()
    alpn = ["h2"] if a.figure.startswith("h2") else ["http/1.1"]
    c = ctx(a.pki, "client-0001", alpn)
    fig = {"slowloris": lambda: slowloris(a, c), "h2silent": lambda: h2silent(a, c, False),
           "h2preface": lambda: h2silent(a, c, True), "faults": lambda: faults(a, c)}[a.figure]
    print(json.dumps(asyncio.run(fig())))

if __name__ == "__main__":
    sys.exit(main())
