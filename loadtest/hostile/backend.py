#!/usr/bin/env python3
"""Backends for the fault figure: one port per behaviour, all on 127.0.0.1.

  ok       200 "ok", keep-alive        reset    reads the request, then resets (RST)
  early    reads, closes, no answer    hang     reads, never answers
  garbage  answers with a broken status line
"""
import asyncio, socket, struct, sys

async def read_head(r):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await r.read(4096)
        if not chunk:
            return None
        data += chunk
    return data

def handler(kind):
    async def h(r, w):
        while True:
            if await read_head(r) is None:
                break
            if kind == "ok":
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"); await w.drain(); continue
            if kind == "reset":
                s = w.get_extra_info("socket")
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif kind == "hang":
                await asyncio.sleep(3600)
            elif kind == "garbage":
                w.write(b"HTTP/1.1 2x0 What\r\nContent-Length: nope\r\n\r\n"); await w.drain()
            break
        w.close()
    return h

async def main(base):
    kinds = ["ok", "reset", "early", "hang", "garbage"]
    servers = [await asyncio.start_server(handler(k), "127.0.0.1", base + i, backlog=4096) for i, k in enumerate(kinds)]
    print("backends up", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))

asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 18180))
