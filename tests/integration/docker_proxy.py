#!/usr/bin/env python3
"""A transparent proxy for the Docker socket, for fault injection: the tests point DOCKER_HOST at it and kill it
mid-task to make the daemon vanish, something a real daemon can't be asked to do on demand.
usage: docker_proxy.py LISTEN_SOCKET [UPSTREAM_SOCKET]"""
import os
import socket
import sys
import threading

listen_path = sys.argv[1]
upstream = sys.argv[2] if len(sys.argv) > 2 else "/var/run/docker.sock"


def pipe(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    finally:
        try:
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def serve():
    if os.path.exists(listen_path):
        os.unlink(listen_path)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(listen_path)
    srv.listen(64)
    while True:
        c, _ = srv.accept()
        u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            u.connect(upstream)
        except OSError:
            c.close()
            continue
        threading.Thread(target=pipe, args=(c, u), daemon=True).start()
        threading.Thread(target=pipe, args=(u, c), daemon=True).start()


serve()
