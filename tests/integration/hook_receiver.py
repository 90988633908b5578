#!/usr/bin/env python3
"""A webhook receiver for the tests, on 127.0.0.1: checks each request's signature and appends one JSON line per
request to LOG. Usage: hook_receiver.py PORTFILE LOG MODE, MODE one of
  ok       answer 200
  fail2    answer 500 to the first two requests, then 200
  404      always 404
  hang     wait 30 s, then 200
The secret is $HOOK_SECRET; a signature is sha256=hex(HMAC-SHA256(secret, timestamp + "." + body))."""
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main(portfile, log, mode):
    secret = os.environ["HOOK_SECRET"].encode()
    lock = threading.Lock()
    count = [0]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            ts = self.headers.get("X-Berth-Timestamp", "")
            mac = hmac.new(secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
            with lock:
                count[0] += 1
                status = {"fail2": 500 if count[0] <= 2 else 200, "404": 404}.get(mode, 200)
                line = {"n": count[0], "status": status, "event": self.headers.get("X-Berth-Event"),
                        "delivery": self.headers.get("X-Berth-Delivery"),
                        "sig_ok": hmac.compare_digest(self.headers.get("X-Berth-Signature-256", ""), "sha256=" + mac),
                        "fresh": abs(time.time() - int(ts or 0)) < 60, "body": json.loads(body or b"null")}
                with open(log, "a") as f:
                    f.write(json.dumps(line) + "\n")
            if mode == "hang":
                time.sleep(30)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(portfile + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(portfile + ".tmp", portfile)
    server.serve_forever()


if __name__ == "__main__":
    main(*sys.argv[1:4])
