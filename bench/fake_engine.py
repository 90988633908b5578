#!/usr/bin/env python3
"""A Docker Engine that answers at once, on a unix socket: what bench/fleet.sh points hosts at to measure the
fleet's coordination alone. Containers and execs exist only as ids; every exec prints one line and exits 0.
usage: fake_engine.py SOCKET"""
import itertools
import json
import os
import re
import socketserver
import sys
from http.server import BaseHTTPRequestHandler

ids = itertools.count(1)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, code, obj=None, ctype="application/json", headers=()):
        body = b"" if obj is None else (obj if isinstance(obj, bytes) else json.dumps(obj).encode())
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if body:  # an empty write to a client that already read its answer and left fails (EPIPE)
            self.wfile.write(body)

    def body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                self.rfile.read(size + 2)
                if size == 0:
                    return
        self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self):
        p = self.path.split("?")[0]
        if p.endswith("/_ping"):
            return self.send(200, b"OK", "text/plain", [("Api-Version", "1.41")])
        if p.endswith("/version"):
            return self.send(200, {"Version": "20.10-fake", "ApiVersion": "1.41", "MinAPIVersion": "1.12"})
        if p.endswith("/info"):
            return self.send(200, {"Driver": "fake"})
        if "/images/" in p:
            return self.send(200, {"Id": "sha256:fake", "Config": {"User": "", "Env": []}})
        if p.endswith("/containers/json"):
            return self.send(200, [])
        if re.search(r"/exec/[^/]+/json$", p):
            return self.send(200, {"Running": False, "ExitCode": 0})
        if re.search(r"/containers/[^/]+/json$", p):
            return self.send(200, {"Id": "c", "State": {"Running": True, "OOMKilled": False, "ExitCode": 0}})
        if p.endswith("/events"):
            return self.send(200, b"", "application/json")
        return self.send(404, {"message": "not in the fake: " + p})

    def do_HEAD(self):  # archive: does the destination exist (checked before an upload)
        return self.send(200)

    def do_PUT(self):
        self.body()
        return self.send(200)

    def do_DELETE(self):
        return self.send(204)

    def do_POST(self):
        self.body()
        p = self.path.split("?")[0]
        if p.endswith("/containers/create"):
            return self.send(201, {"Id": "fake%012d" % next(ids), "Warnings": []})
        if p.endswith("/exec"):
            return self.send(201, {"Id": "exec%012d" % next(ids)})
        if re.search(r"/exec/[^/]+/start$", p):
            out = b"ok\n"
            frame = b"\x01\x00\x00\x00" + len(out).to_bytes(4, "big") + out
            return self.send(200, frame, "application/vnd.docker.raw-stream")
        return self.send(204)


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    # 8 hosts x 4 slots connect at once: with Python's default backlog of 5 a connect was refused now and then (and
    # its task FAILED "cannot connect to the Docker daemon"); dockerd listens with the kernel's somaxconn
    request_queue_size = 512


if os.path.exists(sys.argv[1]):
    os.unlink(sys.argv[1])
with Server(sys.argv[1], Handler) as s:
    s.serve_forever()
