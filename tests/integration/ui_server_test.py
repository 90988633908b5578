"""The web UI's server side against a real `berth serve`: the embedded files (hashed names, ETags, gzip, strict
headers) and the sign-in (session cookie, CSRF token, roles, revocation, sign-out).

Reuses server_test.py's server, store and keys. Run by tests/integration/test_ui_server.sh.
"""
import gzip
import http.client
import json
import os
import re
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import server_test as T  # noqa: E402

HTML = {"Accept": "text/html,application/xhtml+xml"}


def get(path, headers=None, method="GET"):
    c = T.SRV.conn("tcp")
    c.request(method, path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r, body


def test_static():
    r, body = get("/", HTML)
    T.check("GET / from a browser is the UI (text/html)", r.status == 200
            and r.getheader("Content-Type") == "text/html; charset=utf-8" and b"<!doctype html>" in body, r.status)
    csp = r.getheader("Content-Security-Policy", "")
    T.check("strict CSP: scripts only from the server, no framing", "script-src 'self'" in csp
            and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp and "default-src 'self'" in csp, csp)
    T.check("nosniff, no referrer, no framing (legacy header)", r.getheader("X-Content-Type-Options") == "nosniff"
            and r.getheader("Referrer-Policy") == "no-referrer" and r.getheader("X-Frame-Options") == "DENY")
    T.check("index.html is revalidated every time", r.getheader("Cache-Control") == "no-cache")
    T.check("the page has no inline script", not re.search(rb"<script(?![^>]*\bsrc=)", body)
            and b" on" not in body.lower().replace(b" one", b""), body[:300])
    r2, body2 = get("/", {"Accept": "application/json"})
    T.check("GET / asking for JSON is the identity document", r2.status == 200
            and json.loads(body2)["name"] == "berth")
    r3, body3 = get("/")
    T.check("GET / without preferences (curl) is the UI's page", r3.status == 200
            and r3.getheader("Content-Type", "").startswith("text/html"), r3.getheader("Content-Type"))
    assets = re.findall(rb'(?:src|href)="(/[^"]+)"', body)
    T.check("scripts and styles have content-hashed names", len(assets) >= 2
            and all(re.match(rb"/[a-z]+\.[0-9a-f]{12}\.(js|css|svg)$", a) for a in assets), assets)
    total = 0
    for a in assets:
        ra, plain = get(a.decode())
        rz, packed = get(a.decode(), {"Accept-Encoding": "gzip, deflate"})
        ok = (ra.status == 200 and ra.getheader("Cache-Control") == "public, max-age=31536000, immutable"
              and re.match(r'^"[0-9a-f]{20}"$', ra.getheader("ETag", "")) is not None
              and ra.getheader("X-Content-Type-Options") == "nosniff")
        T.check("%s: a year of cache, a strong ETag, nosniff" % a.decode(), ok, dict(ra.getheaders()))
        if rz.getheader("Content-Encoding") == "gzip":
            T.check("%s: gzip when accepted, the same bytes, its own ETag" % a.decode(),
                    gzip.decompress(packed) == plain and rz.getheader("ETag") != ra.getheader("ETag")
                    and rz.getheader("Vary") == "Accept-Encoding")
            total += len(packed)
        else:
            total += len(plain)
        r3, b3 = get(a.decode(), {"If-None-Match": ra.getheader("ETag")})
        T.check("%s: If-None-Match answers 304 with no body" % a.decode(), r3.status == 304 and b3 == b"")
        r4, _ = get(a.decode(), {"Accept-Encoding": "gzip;q=0"})
        T.check("%s: gzip;q=0 is honoured" % a.decode(), r4.getheader("Content-Encoding") is None)
    rz, packed = get("/", dict(HTML, **{"Accept-Encoding": "gzip"}))
    total += len(packed)
    T.check("the UI's page, script and style weigh under 150 KB compressed (%d bytes)" % total, total < 150 * 1024)
    r5, b5 = get("/nothing.here.js")
    T.check("an unknown path is the API's 404", r5.status == 404 and json.loads(b5)["error"] == "not_found")
    r6, _ = get("/", HTML, method="HEAD")
    T.check("HEAD / works", r6.status == 200)


def session_req(method, path, cookie=None, csrf=None, body=None, ctype="application/json"):
    h = {}
    if cookie:
        h["Cookie"] = cookie
    if csrf:
        h["X-CSRF-Token"] = csrf
    data = json.dumps(body).encode() if body is not None else None
    if data is not None and ctype:
        h["Content-Type"] = ctype
    c = T.SRV.conn("tcp")
    c.request(method, path, body=data, headers=h)
    r = c.getresponse()
    payload = r.read()
    c.close()
    try:
        j = json.loads(payload)
    except ValueError:
        j = None
    for p in T.SPEC.check_response(method, path, r.status, r.getheader("Content-Type", ""), payload):
        T.schema_problems.append(p)
    return r, j


def sign_in(key):
    r, j = session_req("POST", "/v1/session", body={"key": key})
    sc = r.getheader("Set-Cookie", "")
    m = re.match(r"berth_session=([A-Za-z0-9_-]{43});", sc)
    return r, j, sc, ("berth_session=" + m.group(1)) if m else None


def test_session(keys):
    r, _ = session_req("POST", "/v1/session", body={"key": keys["w1"]}, ctype="text/plain")
    T.check("sign-in needs a JSON body (a cross-site form cannot post one)", r.status == 400, r.status)
    r, j, sc, _ = sign_in(keys["w1"][:-3] + "AAA")
    T.check("a wrong key: 401, no cookie", r.status == 401 and not sc, (r.status, sc))
    r, j, sc, cookie = sign_in(keys["w1"])
    T.check("sign-in: 201 with name, role and a CSRF token", r.status == 201 and j["name"] == "w1"
            and j["role"] == "writer" and len(j.get("csrf_token", "")) == 43, j)
    T.check("the cookie: HttpOnly, SameSite=Strict, expiring, Path=/", cookie and "HttpOnly" in sc
            and "SameSite=Strict" in sc and "Max-Age=28800" in sc and "Path=/" in sc and "Secure" not in sc, sc)
    T.check("the answer never echoes the key", keys["w1"] not in json.dumps(j))
    csrf = j["csrf_token"]
    r, j = session_req("GET", "/v1/session", cookie)
    T.check("GET /v1/session with the cookie says who, and the CSRF token again", r.status == 200
            and j["name"] == "w1" and j["csrf_token"] == csrf, j)
    r, j = session_req("GET", "/v1/stacks", cookie)
    T.check("the cookie authenticates API reads", r.status == 200 and "stacks" in j, r.status)
    lock = "/v1/stacks/%s/lock" % T.S(3)
    r, j = session_req("POST", lock, cookie, body={"note": "ui"})
    T.check("a POST with the cookie and no CSRF token is refused (403)", r.status == 403 and "CSRF" in j["message"], j)
    r, j = session_req("POST", lock, cookie, csrf="x" * 43, body={"note": "ui"})
    T.check("a POST with a wrong CSRF token is refused (403)", r.status == 403, j)
    r, j = session_req("POST", lock, cookie, csrf=csrf, body={"note": "ui"})
    T.check("with the CSRF token the writer locks", r.status == 200, j)
    r, j = session_req("DELETE", lock, cookie, csrf=csrf)
    T.check("  ...and unlocks", r.status == 200, j)

    # a reader's cookie: refused above its role, whatever it sends
    r, j, _, rcookie = sign_in(keys["rd"])
    rcsrf = j["csrf_token"]
    r, j = session_req("POST", "/v1/stacks/%s/tasks" % T.S(3), rcookie, csrf=rcsrf, body={"command": "true"})
    T.check("a reader's cookie with its CSRF token may not run a task (403)", r.status == 403 and "reader" in j["message"], j)
    r, j = session_req("POST", "/v1/stacks/%s/tasks" % T.S(3), rcookie, body={"command": "true"})
    T.check("a forged POST with a reader's cookie is refused (403)", r.status == 403, j)

    # revoking the key ends its sessions at the next request
    rc, out, err = T.berth("key", "create", "uitmp", "--role", "writer")
    tmpkey = out.strip().splitlines()[-1]
    r, j, _, tcookie = sign_in(tmpkey)
    r1, _ = session_req("GET", "/v1/session", tcookie)
    T.berth("key", "revoke", "uitmp")
    r2, j2 = session_req("GET", "/v1/session", tcookie)
    T.check("a revoked key's session is refused at once (401)", r1.status == 200 and r2.status == 401, (r1.status, r2.status))

    # sign-out
    r, j = session_req("DELETE", "/v1/session", cookie)
    T.check("sign-out needs the CSRF token too", r.status == 403, r.status)
    r, j = session_req("DELETE", "/v1/session", cookie, csrf=csrf)
    T.check("sign-out: 200 and the cookie cleared", r.status == 200 and "Max-Age=0" in r.getheader("Set-Cookie", ""), j)
    r, j = session_req("GET", "/v1/stacks", cookie)
    T.check("after sign-out the cookie is worthless (401)", r.status == 401, r.status)
    r, j = session_req("GET", "/v1/stacks", "berth_session=" + "A" * 43)
    T.check("a made-up session id: 401", r.status == 401, r.status)


def test_tls_cookie(keys):
    """Under TLS the cookie is Secure and __Host- prefixed (browsers then refuse it from plain HTTP or a subdomain)."""
    tls = T.tls_server()
    if tls is None:
        T.check("TLS cookie (skipped: no openssl)", True)
        return
    p, port, cert = tls
    try:
        ctx = ssl.create_default_context(cafile=cert)

        def call(method, path, headers, body=None):
            c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
            c.request(method, path, body=body, headers=headers)
            r = c.getresponse()
            r.read()
            c.close()
            return r

        r = call("POST", "/v1/session", {"Content-Type": "application/json"}, json.dumps({"key": keys["rd"]}))
        sc = r.getheader("Set-Cookie", "")
        m = re.match(r"__Host-berth_session=([A-Za-z0-9_-]{43});", sc)
        T.check("under TLS the cookie is __Host-berth_session, Secure, HttpOnly, SameSite=Strict", r.status == 201 and m
                and "; Secure" in sc and "HttpOnly" in sc and "SameSite=Strict" in sc, sc)
        if m:
            ok = call("GET", "/v1/session", {"Cookie": "__Host-berth_session=" + m.group(1)})
            plain = call("GET", "/v1/session", {"Cookie": "berth_session=" + m.group(1)})
            T.check("  ...it authenticates under that name only", ok.status == 200 and plain.status == 401,
                    (ok.status, plain.status))
    finally:
        p.terminate()
        p.wait()


def test_paging(keys):
    ids = []
    for i in range(3):
        st, j, _, _ = T.req("POST", "/v1/stacks/%s/tasks" % T.S(4), keys["w1"], {"command": "true", "skip_init": True})
        ids.append(j["id"])
    for tid in ids:
        T.wait_task(keys["rd"], tid)
    st, j, _, _ = T.req("GET", "/v1/tasks?stack=%s&limit=2" % T.S(4), keys["rd"])
    st2, j2, _, _ = T.req("GET", "/v1/tasks?stack=%s&limit=2&offset=2" % T.S(4), keys["rd"])
    got = [t["id"] for t in j["tasks"]] + [t["id"] for t in j2["tasks"]]
    T.check("paging with limit and offset lists each task once, newest first", got == ids[::-1], (got, ids))


if __name__ == "__main__":
    T.run_suite([lambda keys: test_static(), test_session, test_tls_cookie, test_paging])
