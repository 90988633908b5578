#!/usr/bin/env python3
"""A fake Docker Engine on a unix socket, for faults a real daemon can't produce on demand: an API version that is
too old or too new, plain-text error bodies, a garbage exec stream, an oversized body.
usage: fake_docker.py SOCKET MODE   (MODE: ok | newer | old | new | text-error | huge-info | garbage-exec | frozen)"""
import json
import os
import socketserver
import sys
from http.server import BaseHTTPRequestHandler

sock, mode = sys.argv[1], sys.argv[2]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, code, body, ctype="application/json", headers=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def api(self):
        return {"old": "1.12", "new": "1.99", "ok": "1.43", "newer": "1.50"}.get(mode, "1.41")

    def do_GET(self):
        path = self.path
        if mode == "frozen":  # a daemon that accepts and never answers (SIGSTOPped, wedged)
            import time
            time.sleep(3600)
        if path.endswith("/_ping"):
            return self.send(200, b"OK", "text/plain", [("Api-Version", self.api())])
        if path.endswith("/version"):
            minimum = "1.50" if mode == "new" else "1.12"
            return self.send(200, json.dumps({"Version": "99.0-fake", "ApiVersion": self.api(),
                                              "MinAPIVersion": minimum}).encode())
        if path.endswith("/info"):
            if mode == "text-error":
                return self.send(500, b"boom: the fake daemon broke\n", "text/plain")
            if mode == "huge-info":
                return self.send(200, b'{"Driver":"' + b"x" * (20 << 20) + b'"}')
            return self.send(200, json.dumps({"Driver": "fake"}).encode())
        if "/images/" in path:
            return self.send(200, json.dumps({"Id": "sha256:fake", "Config": {"User": ""}}).encode())
        return self.send(404, b'{"message":"page not found"}')

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(n)
        if "/exec/" in self.path and self.path.endswith("/start"):
            # a valid frame, then an unknown stream type
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.docker.raw-stream")
            self.end_headers()
            self.wfile.write(b"\x01\x00\x00\x00\x00\x00\x00\x03ok\n" + b"\x09\x00\x00\x00\x00\x00\x00\x01x")
            self.wfile.flush()
            self.close_connection = True
            return
        if self.path.endswith("/exec"):
            return self.send(201, b'{"Id":"fakeexec"}')
        return self.send(404, b'{"message":"page not found"}')


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


if os.path.exists(sock):
    os.unlink(sock)
with Server(sock, Handler) as s:
    s.serve_forever()
