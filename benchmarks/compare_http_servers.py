"""Which server library carries the health endpoint: aiohttp or uvicorn + starlette, each
serving the same three small pages from a thread of a Python process, as the table does.

    python benchmarks/compare_http_servers.py [--idle 1000] [--probes 300] [--concurrency 20]

Per library, in a fresh subprocess each (so imports and memory are its own):
- import time and resident memory of the idle server;
- `--idle` connections opened and left silent (half of them with a half-sent request
  line), then `--probes` GET /healthz from `--concurrency` clients at once: how many got
  an answer, and their p50/p99 latency; resident memory with the idle connections held;
- the malformed requests of issue 22 (Content-Length -1 and abc, a 32 MiB body, a body that
  never comes): the status line each one gets (or "none": the connection closed unanswered);
- the installed size of the library and what it pulls in.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

SERVER = r'''
import json, os, sys, threading, time, resource
t0 = time.perf_counter()
kind = sys.argv[1]
if kind == "aiohttp":
    import asyncio
    from aiohttp import web
else:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse, JSONResponse
    from starlette.routing import Route
import_s = time.perf_counter() - t0
port = {}

if kind == "aiohttp":
    async def healthz(request):
        return web.Response(text="running\n")
    async def settings(request):
        body = await request.json()
        return web.json_response({"got": body})
    def serve():
        loop = asyncio.new_event_loop()
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_get("/healthz", healthz)
        app.router.add_post("/api/settings", settings)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        port["n"] = runner.addresses[0][1]
        loop.run_forever()
else:
    async def healthz(request):
        return PlainTextResponse("running\n")
    async def settings(request):
        body = await request.body()  # starlette has no body size limit of its own
        return JSONResponse({"got": json.loads(body)})
    app = Starlette(routes=[Route("/healthz", healthz), Route("/api/settings", settings, methods=["POST"])])
    sock = __import__("socket").socket()
    sock.bind(("127.0.0.1", 0))
    port["n"] = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", timeout_keep_alive=5))
    def serve():
        server.run(sockets=[sock])
threading.Thread(target=serve, daemon=True).start()
while "n" not in port or (kind != "aiohttp" and not server.started):
    time.sleep(0.01)
def rss_mb():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024
print(json.dumps({"port": port["n"], "import_s": import_s, "rss_mb": rss_mb()}), flush=True)
for line in sys.stdin:  # each line asks for the memory now
    print(json.dumps({"rss_mb": rss_mb()}), flush=True)
'''


def probe(port: int) -> float | None:
    t0 = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        return time.perf_counter() - t0 if data.startswith(b"HTTP/1.1 200") else None
    except OSError:
        return None


def raw(port: int, request: bytes, wait_s: float = 8.0) -> str:
    """The status line the server answers `request` with, or 'none'."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as s:
            try:
                s.sendall(request)
            except OSError:
                pass  # the server closed while the body was still going: read its answer
            data = s.recv(200)
        return data.split(b"\r\n", 1)[0].decode() or "none"
    except OSError as exc:
        return f"none ({type(exc).__name__})"


def measure(kind: str, idle: int, probes: int, concurrency: int) -> dict:
    proc = subprocess.Popen([sys.executable, "-c", SERVER, kind], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        start = json.loads(proc.stdout.readline())
        port = start["port"]
        silent = []
        for i in range(idle):
            s = socket.create_connection(("127.0.0.1", port))
            if i % 2:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the blank line
            silent.append(s)
        time.sleep(1.0)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            times = list(pool.map(lambda _: probe(port), range(probes)))
        wall = time.perf_counter() - t0
        proc.stdin.write("\n")
        proc.stdin.flush()
        held_rss = json.loads(proc.stdout.readline())["rss_mb"]
        answered = sorted(t for t in times if t is not None)
        still_open = 0
        for s in silent:  # which idle connections the server has not closed by now
            s.setblocking(False)
            try:
                still_open += s.recv(1, socket.MSG_PEEK) != b""
            except BlockingIOError:
                still_open += 1
            except OSError:
                pass
            s.close()
        malformed = {
            "content-length -1": raw(port, b"POST /api/settings HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n{}"),
            "content-length abc": raw(port, b"POST /api/settings HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"),
            "32 MiB body": raw(port, b"POST /api/settings HTTP/1.1\r\nHost: x\r\nContent-Length: 33554432\r\n\r\n"
                               + b"x" * (1 << 20)),
            "body never sent": raw(port, b"POST /api/settings HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n",
                                   wait_s=20),
        }
        return {"library": kind, "import_s": round(start["import_s"], 3), "rss_idle_mb": round(start["rss_mb"], 1),
                "rss_held_mb": round(held_rss, 1), "idle_connections": idle, "idle_still_open": still_open,
                "probes": probes, "answered": len(answered), "probes_per_s": round(len(answered) / wall, 1),
                "p50_ms": round(1000 * answered[len(answered) // 2], 1) if answered else None,
                "p99_ms": round(1000 * answered[int(len(answered) * 0.99) - 1], 1) if answered else None,
                "malformed": malformed}
    finally:
        proc.kill()
        proc.wait()


def installed_size(dists: list[str]) -> float:
    from importlib.metadata import distribution

    total = 0
    for name in dists:
        for f in distribution(name).files or []:
            p = f.locate()
            if os.path.isfile(p):
                total += os.path.getsize(p)
    return round(total / 1e6, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--idle", type=int, default=1000)
    ap.add_argument("--probes", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=20)
    args = ap.parse_args()
    sizes = {"aiohttp": ["aiohttp", "multidict", "yarl", "frozenlist", "aiosignal", "propcache", "aiohappyeyeballs"],
             "uvicorn": ["uvicorn", "starlette", "h11", "click", "anyio"]}
    for kind in ("aiohttp", "uvicorn"):
        row = measure(kind, args.idle, args.probes, args.concurrency)
        row["installed_mb"] = installed_size(sizes[kind])
        print(json.dumps(row))


if __name__ == "__main__":
    main()
