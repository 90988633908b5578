#!/usr/bin/env python3
"""A proxy for the Docker socket, for fault injection: the tests point DOCKER_HOST at it and kill it mid-task to
make the daemon vanish, or make it answer container creation with an error that echoes the request's environment
(as some daemon errors do), things a real daemon can't be asked to do on demand.
With --record FILE it appends every request's line and headers to FILE (to check what berth sends).
With --refuse-create FILE it writes each container creation's body to FILE and answers it with an error, so the
body berth sends can be checked without a container (one berth may not start here, say on the host's network).
With --fake-pull it answers image pulls itself with a slow progress stream of two 4 MiB layers (the image must
already be present in the real daemon), to watch the progress a real registry would send.
usage: docker_proxy.py LISTEN_SOCKET [UPSTREAM_SOCKET] [--echo-env-on-create] [--fake-pull] [--record FILE]
       [--refuse-create FILE]"""
import json
import os
import socket
import sys
import threading
import time

argv = sys.argv[1:]
record = None
if "--record" in argv:
    i = argv.index("--record")
    record = argv[i + 1]
    del argv[i:i + 2]
refuse_create = None
if "--refuse-create" in argv:
    i = argv.index("--refuse-create")
    refuse_create = argv[i + 1]
    del argv[i:i + 2]
args = [a for a in argv if not a.startswith("--")]
listen_path = args[0]
upstream = args[1] if len(args) > 1 else "/var/run/docker.sock"
echo_env = "--echo-env-on-create" in argv
fake_pull = "--fake-pull" in argv
record_lock = threading.Lock()


def read_request(c):
    """Reads one HTTP request (headers + Content-Length body); returns (head, body) or None."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = c.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    while len(body) < length:
        chunk = c.recv(65536)
        if not chunk:
            break
        body += chunk
    return head, body


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


def maybe_fail_create(c):
    """Answers POST .../containers/create with a 500 echoing the Env; forwards everything else."""
    req = read_request(c)
    if req is None:
        c.close()
        return
    head, body = req
    if record:
        with record_lock, open(record, "ab") as f:
            f.write(head + b"\r\n\r\n")
    if fake_pull and b"/images/create" in head.split(b"\r\n")[0]:
        return answer_pull(c)
    if refuse_create and b"/containers/create" in head.split(b"\r\n")[0]:
        with record_lock, open(refuse_create, "ab") as f:
            f.write(body + b"\n")
        msg = b'{"message": "container creation refused by the test proxy"}'
        c.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(msg) + msg)
        c.close()
        return
    if echo_env and b"/containers/create" in head.split(b"\r\n")[0]:
        env = json.loads(body or b"{}").get("Env", [])
        msg = json.dumps({"message": "invalid environment: " + " ".join(env)}).encode()
        c.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(msg) + msg)
        c.close()
        return
    # one request per connection, so that every request passes through here
    lines = [l for l in head.split(b"\r\n") if not l.lower().startswith(b"connection:")]
    head = b"\r\n".join(lines + [b"Connection: close"])
    u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    u.connect(upstream)
    u.sendall(head + b"\r\n\r\n" + body)
    threading.Thread(target=pipe, args=(c, u), daemon=True).start()
    threading.Thread(target=pipe, args=(u, c), daemon=True).start()


def answer_pull(c):
    """A pull's JSON progress stream, chunked, over about four seconds: two layers downloading 1 MiB at a time."""
    mib = 1 << 20
    events = [{"status": "Pulling from berth/busybox", "id": "latest"}]
    events += [{"status": "Pulling fs layer", "progressDetail": {}, "id": l} for l in ("aaaa", "bbbb")]
    for step in range(1, 5):
        for l in ("aaaa", "bbbb"):
            events.append({"status": "Downloading", "progressDetail": {"current": step * mib, "total": 4 * mib},
                           "id": l})
        events.append(None)  # a pause
    for l in ("aaaa", "bbbb"):
        events += [{"status": "Download complete", "progressDetail": {}, "id": l},
                   {"status": "Pull complete", "progressDetail": {}, "id": l}]
    events += [{"status": "Digest: sha256:" + "0" * 64}, {"status": "Status: Image is up to date"}]
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
              b"Connection: close\r\n\r\n")
    for e in events:
        if e is None:
            time.sleep(1.0)
            continue
        line = json.dumps(e).encode() + b"\r\n"
        c.sendall(b"%x\r\n%s\r\n" % (len(line), line))
    c.sendall(b"0\r\n\r\n")
    c.close()


def serve():
    if os.path.exists(listen_path):
        os.unlink(listen_path)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(listen_path)
    srv.listen(64)
    while True:
        c, _ = srv.accept()
        if echo_env or record or fake_pull or refuse_create:
            threading.Thread(target=maybe_fail_create, args=(c,), daemon=True).start()
            continue
        u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            u.connect(upstream)
        except OSError:
            c.close()
            continue
        threading.Thread(target=pipe, args=(c, u), daemon=True).start()
        threading.Thread(target=pipe, args=(u, c), daemon=True).start()


serve()
