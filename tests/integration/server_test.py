"""Integration test of `berth serve`: a real server on a Unix socket and on 127.0.0.1 (a free port), real Docker.

Every JSON answer is validated against docs/openapi.yaml. Prints "N passed, N failed"; exits 1 on any failure.
Run by tests/integration/test_server.sh (BERTH = the binary, BERTH_SRC = the source tree).
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import server_openapi  # noqa: E402

BERTH = os.environ["BERTH"]
SRC = os.environ.get("BERTH_SRC", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SPEC = server_openapi.Spec(os.path.join(SRC, "docs", "openapi.yaml"))
TMP = tempfile.mkdtemp(prefix="berth-srv-test.")
HOME = os.path.join(TMP, "home")
SOCK = os.path.join(TMP, "berth.sock")
ENV = dict(os.environ, BERTH_HOME=HOME)
ENV.pop("BERTH_SERVER", None)
ENV.pop("BERTH_API_KEY", None)
RUN_ID = str(os.getpid())

passes = 0
fails = 0
lock = threading.Lock()



# "3 s ago" in tables is read from the clock when each command runs: two runs a second apart differ there only
AGO = re.compile(r"just now|\b\d+ (?:s|min|h|days?) ago")


def unclocked(r):
    """(rc, out, err) with relative times and the padding after them made equal."""
    return (r[0],) + tuple(re.sub(r" +", " ", AGO.sub("AGO", t)) for t in r[1:])

def check(what, cond, detail=""):
    global passes, fails
    with lock:
        if cond:
            passes += 1
            print("ok   - %s" % what)
        else:
            fails += 1
            print("FAIL - %s%s" % (what, (": " + str(detail)[:600]) if detail else ""))
    return cond


def berth(*args, env=None, timeout=120, stdin=subprocess.DEVNULL):
    e = dict(ENV)
    if env:
        e.update(env)
    p = subprocess.run([BERTH, *args], env=e, capture_output=True, timeout=timeout, stdin=stdin)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


class UnixConn(http.client.HTTPConnection):
    def __init__(self, path, timeout=60):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class Server:
    def __init__(self, *extra):
        self.log = open(os.path.join(TMP, "serve.log"), "ab")
        self.errpath = os.path.join(TMP, "serve-%d.err" % time.time_ns())
        self.proc = subprocess.Popen([BERTH, "serve", "--listen", "unix:" + SOCK, "--listen", "tcp:127.0.0.1:0", *extra],
                                     env=ENV, stdout=self.log, stderr=open(self.errpath, "wb"))
        self.port = None
        for _ in range(100):
            with open(self.errpath, errors="replace") as f:
                m = re.search(r"listening on tcp:127\.0\.0\.1:(\d+)", f.read())
            if m and os.path.exists(SOCK):
                self.port = int(m.group(1))
                break
            time.sleep(0.05)
        if self.port is None:
            raise RuntimeError("the server did not start: " + open(self.errpath).read())

    def stderr(self):
        with open(self.errpath, errors="replace") as f:
            return f.read()

    def conn(self, transport="unix", timeout=60):
        if transport == "unix":
            return UnixConn(SOCK, timeout=timeout)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def url(self, transport="unix"):
        return "unix:" + SOCK if transport == "unix" else "http://127.0.0.1:%d" % self.port


SRV = None
schema_problems = []


def req(method, path, key=None, body=None, transport="unix", raw=None, headers=None, validate=True):
    """One request; returns (status, json-or-None, raw bytes, headers)."""
    c = SRV.conn(transport)
    h = dict(headers or {})
    if key:
        h["Authorization"] = "Bearer " + key
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    if data is not None:
        h.setdefault("Content-Type", "application/json")
    c.request(method, path, body=data, headers=h)
    r = c.getresponse()
    payload = r.read()
    ctype = r.getheader("Content-Type", "")
    c.close()
    j = None
    if ctype.startswith("application/json"):
        try:
            j = json.loads(payload)
        except ValueError:
            pass
    if validate:
        for p in SPEC.check_response(method, path, r.status, ctype, payload):
            schema_problems.append(p)
    return r.status, j, payload, r


def wait_task(key, tid, states=("FINISHED", "FAILED", "CANCELED", "STOPPED"), timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        st, j, _, _ = req("GET", "/v1/tasks/" + tid, key)
        if st == 200 and j["state"] in states:
            return j
        time.sleep(0.1)
    return None


def containers_of(tid):
    out = subprocess.run(["docker", "ps", "-aq", "--filter", "label=berth.task=" + tid], capture_output=True)
    return out.stdout.decode().split()


def setup():
    os.makedirs(HOME)
    proj = os.path.join(TMP, "proj")
    os.makedirs(proj)
    with open(os.path.join(proj, "f"), "w") as f:
        f.write("x\n")
    for s in ("s1", "s2", "s3", "s4"):
        rc, _, err = berth("stack", "create", "t%s-%s" % (RUN_ID, s), "--image", "berth/runner:latest",
                           "--project-dir", proj)
        assert rc == 0, err
    keys = {}
    for name, role, extra in (("adm", "admin", []), ("w1", "writer", []), ("w2", "writer", []),
                              ("wa", "writer", ["--stack", "t%s-s1" % RUN_ID]), ("rd", "reader", [])):
        rc, out, err = berth("key", "create", name, "--role", role, *extra)
        assert rc == 0, err
        keys[name] = out.strip().splitlines()[-1]
    return keys


def S(n):
    return "t%s-s%d" % (RUN_ID, n)


# ---------------------------------------------------------------------------------------------------------------------

def store_bytes():
    """The store's bytes as someone with the files (SQLite) or a dump of the database (PostgreSQL) sees them."""
    if os.environ.get("BERTH_STORE"):
        return subprocess.run(["pg_dump", os.environ["BERTH_STORE"]], capture_output=True, check=True).stdout
    return open(os.path.join(HOME, "berth.db"), "rb").read()


def pg_sessions():
    """PostgreSQL: the sessions ever opened on the store's database (this query's own included)."""
    out = subprocess.run(["psql", "-X", "-Atc", "SELECT sessions FROM pg_stat_database WHERE datname ="
                          " current_database()", os.environ["BERTH_STORE"]], capture_output=True, text=True)
    return int(out.stdout.strip() or -1)


def test_store_reuse(keys):
    """A client that connects per request (as the CLI and curl do) gets a store handle an earlier connection's
    thread left: on PostgreSQL, no new database session per request."""
    pg = bool(os.environ.get("BERTH_STORE"))
    before = pg_sessions() if pg else 0
    ok = 0
    for i in range(30):
        st, j, _, _ = req("GET", "/v1/stacks", keys["rd"], transport="unix" if i % 2 else "tcp")
        ok += st == 200 and isinstance(j.get("stacks"), list)
    check("30 requests, each on a connection of its own, are answered (%d)" % ok, ok == 30)
    if pg:
        time.sleep(1.5)  # PostgreSQL publishes its session counts within a second
        opened = pg_sessions() - before - 1
        check("  ...and open no PostgreSQL session each (%d opened for 30 connections)" % opened, 0 <= opened <= 3)
        out = subprocess.run(["psql", "-X", "-Atc", "SELECT count(*) FROM pg_stat_activity WHERE datname ="
                              " current_database() AND application_name = 'berth'", os.environ["BERTH_STORE"]],
                             capture_output=True, text=True).stdout.strip()
        check("the server's PostgreSQL sessions are named berth in pg_stat_activity (%s)" % out, out.isdigit() and int(out) > 0)


def test_log_reader_reuse(keys):
    """Log reads on connections of their own: each has the whole log; on PostgreSQL a reader's connection is left
    for the next reader (no new database session per read)."""
    st, j, _, _ = req("POST", "/v1/stacks/%s/tasks" % S(1), keys["w1"], body={"command": "echo reuse-me"})
    fin = wait_task(keys["rd"], j["id"]) if st == 201 else None
    check("a task to read the log of finishes", fin is not None and fin["state"] == "FINISHED", (st, j))
    pg = bool(os.environ.get("BERTH_STORE"))
    before = pg_sessions() if pg else 0
    ok = 0
    for i in range(30):
        st, _, payload, _ = req("GET", "/v1/tasks/%s/logs" % j["id"], keys["rd"], transport="unix" if i % 2 else "tcp")
        ok += st == 200 and b"reuse-me" in payload and b"FINISHED" in payload
    check("30 log reads, each on a connection of its own, each get the whole log (%d)" % ok, ok == 30)
    if pg:
        time.sleep(1.5)
        opened = pg_sessions() - before - 1
        check("  ...and open no PostgreSQL session each (%d opened for 30 reads)" % opened, 0 <= opened <= 3)


def test_keys(keys):
    rc, out, _ = berth("key", "list", "--json")
    check("key list --json works locally", rc == 0 and '"adm"' in out)
    check("key list never shows a secret", all(k not in out for k in keys.values()) and "$argon2" not in out)
    db = store_bytes()
    check("the store holds no key in clear, only argon2id hashes",
          all(k.encode() not in db for k in keys.values()) and b"$argon2id$" in db)
    rc, out, err = berth("key", "create", "adm", "--role", "admin")
    check("a second live key with the same name is refused", rc != 0 and "already exists" in err, err)
    rc, _, err = berth("key", "create", "x", "--role", "root")
    check("an unknown role is refused", rc == 125 and "role" in err, err)


def role_matrix(keys, transport):
    """Every endpoint against no key, a bad key, reader, writer and admin."""
    s1 = S(1)
    bad_secret = keys["rd"][:-4] + ("AAAA" if not keys["rd"].endswith("AAAA") else "BBBB")
    # (method, path, body, least role); bodies chosen so an allowed call changes nothing (400/404) or is harmless
    R, W, A = 1, 2, 3
    eps = [
        ("GET", "/v1/doctor", None, R),
        ("GET", "/v1/stacks", None, R),
        ("POST", "/v1/stacks", {"name": "bad name!", "image": "x"}, A),
        ("GET", "/v1/stacks/" + s1, None, R),
        ("PATCH", "/v1/stacks/no-such-stack", {"labels": []}, A),
        ("DELETE", "/v1/stacks/no-such-stack", None, A),
        ("POST", "/v1/stacks/no-such-stack/lock", None, W),
        ("DELETE", "/v1/stacks/no-such-stack/lock", None, W),
        ("GET", "/v1/stacks/%s/state" % s1, None, R),
        ("POST", "/v1/stacks/%s/tasks" % s1, {"command": "   "}, W),
        ("GET", "/v1/tasks", None, R),
        ("GET", "/v1/tasks/zzzzzzzzzzzz", None, R),
        ("POST", "/v1/tasks/zzzzzzzzzzzz/cancel", None, W),
        ("GET", "/v1/tasks/zzzzzzzzzzzz/logs", None, R),
        ("GET", "/v1/images/rules", None, R),
        ("POST", "/v1/images/rules", {"pattern": "x", "kind": "maybe"}, A),
        ("DELETE", "/v1/images/rules?pattern=docker.io/no/such:rule", None, A),
        ("GET", "/v1/images/check?ref=berth/runner:latest", None, R),
        ("GET", "/v1/policies", None, R),
        ("POST", "/v1/policies", {"name": "p", "decision": "perhaps"}, A),
        ("DELETE", "/v1/policies/no-such-policy", None, A),
        ("POST", "/v1/policies/test", {"stack": "no-such-stack", "command": "true"}, R),
        ("GET", "/v1/audit", None, A),
        ("GET", "/v1/audit/verify", None, A),
        ("GET", "/v1/keys", None, A),
        ("POST", "/v1/keys", {"name": "k", "role": "emperor"}, A),
        ("DELETE", "/v1/keys/no-such-key", None, A),
    ]
    callers = [("no key", None, 0), ("a malformed key", "not-a-key", 0), ("a wrong secret", bad_secret, 0),
               ("reader", keys["rd"], R), ("writer", keys["w1"], W), ("admin", keys["adm"], A)]
    wrong = []
    for method, path, body, need in eps:
        for cname, key, level in callers:
            st, j, payload, _ = req(method, path, key, body, transport)
            if level == 0:
                ok = st == 401 and j and j.get("error") == "denied"
            elif level < need:
                ok = st == 403 and j and j.get("error") == "denied"
            else:
                ok = st not in (401, 403) and st < 500
            if not ok:
                wrong.append("%s %s as %s -> %s %s" % (method, path, cname, st, payload[:120]))
    check("role matrix over %d endpoints x %d callers (%s)" % (len(eps), len(callers), transport), not wrong,
          "; ".join(wrong[:5]))


def test_scope_and_secrets(keys):
    st, j, _, _ = req("POST", "/v1/stacks/%s/tasks" % S(2), keys["wa"], {"command": "true"})
    check("a writer scoped to stack A is refused on stack B (403)", st == 403 and j["error"] == "denied", j)
    st, j, _, _ = req("GET", "/v1/stacks", keys["wa"])
    check("a scoped key lists only its stacks", st == 200 and [s["name"] for s in j["stacks"]] == [S(1)], j)
    st, j, _, _ = req("GET", "/v1/stacks/" + S(2), keys["wa"])
    check("a scoped key cannot read another stack", st == 403, st)
    # secrets: a stack created through the API with a secret; readers see ***
    body = {"name": "t%s-sec" % RUN_ID, "image": "berth/runner:latest", "env": {"PLAIN": "visible"},
            "secret_env": {"TOKEN": "hunter2-s3cr3t-value"}, "memory": "512m", "timeout": "10m"}
    st, j, _, r = req("POST", "/v1/stacks", keys["adm"], body)
    check("an admin creates a stack through the API (201, Location)",
          st == 201 and r.getheader("Location") == "/v1/stacks/" + body["name"] and j["memory_bytes"] == 512 << 20, j)
    for who in ("rd", "w1", "adm"):
        st, j, payload, _ = req("GET", "/v1/stacks/" + body["name"], keys[who])
        check("%s sees the secret key but never its value" % who,
              st == 200 and j["secret_env"] == {"TOKEN": "***"} and b"hunter2" not in payload, payload[:200])
    st, j, _, _ = req("PATCH", "/v1/stacks/" + body["name"], keys["adm"], {"secret_env": {"TOKEN": "***"},
                                                                           "labels": ["x"]})
    check("PATCH keeps a secret given as ***", st == 200 and j["labels"] == ["x"], j)
    st, j, _, _ = req("POST", "/v1/stacks/%s/tasks" % body["name"], keys["w1"],
                      {"command": "echo token=$TOKEN task=$TSEC", "secret_env": {"TSEC": "t4sk-s3cr3t-value"}})
    tid = j["id"]
    check("task secret values are *** in the answer", st == 201 and j["secret_env"] == {"TSEC": "***"}, j)
    st, j, _, _ = req("POST", "/v1/stacks/%s/tasks" % body["name"], keys["w1"], {"command": "echo hunter2-s3cr3t-value"})
    lit = j.get("id", "")
    for how, path in (("its id", lit), ("a prefix of its id", lit[:12])):
        st, j, payload, _ = req("GET", "/v1/tasks/" + path, keys["rd"])
        check("GET by %s shows the stack's secret typed in a command as ***" % how,
              st == 200 and j["command"] == "echo ***" and b"hunter2" not in payload, payload[:200])
    wait_task(keys["rd"], lit)
    st, j, payload, _ = req("POST", "/v1/tasks/%s/retry" % lit, keys["w1"])
    check("a retry's answer shows the stack's secret typed in its command as ***",
          st == 201 and j["command"] == "echo ***" and b"hunter2" not in payload, payload[:200])
    if st == 201:
        wait_task(keys["rd"], j["id"])
    fin = wait_task(keys["rd"], tid)
    st, _, payload, _ = req("GET", "/v1/tasks/%s/logs" % tid, keys["rd"])
    check("a reader's log shows *** for secrets", fin and fin["state"] == "FINISHED" and b"token=***" in payload
          and b"hunter2" not in payload and b"t4sk" not in payload, payload[-300:])
    # a task's secret values are wiped when it ends; their names stay, and a retry must be given them again
    st, j, payload, _ = req("GET", "/v1/tasks/" + tid, keys["rd"])
    check("an ended task still names its secret env (value ***)", st == 200 and j["secret_env"] == {"TSEC": "***"}
          and b"t4sk" not in payload, payload[:300])
    st, j, payload, _ = req("POST", "/v1/tasks/%s/retry" % tid, keys["w1"])
    check("a retry without the secret env it had -> 400 naming it", st == 400 and j["error"] == "invalid"
          and "TSEC" in j["message"] and "--secret-env TSEC" in j["message"], j)
    st, j, _, _ = req("GET", "/v1/tasks?stack=%s" % body["name"], keys["rd"])
    check("  ...and records no task", st == 200 and not [t for t in j["tasks"] if t["retry_of"] == tid], j)
    st, j, payload, _ = req("POST", "/v1/tasks/%s/retry" % tid, keys["w1"], {"secret_env": {"TSEC": "4gain-s3cr3t-v4lue"}})
    check("a retry given the secret env again runs", st == 201 and j["secret_env"] == {"TSEC": "***"}
          and j["retry_of"] == tid and b"4gain" not in payload, payload[:300])
    if st == 201:
        fin = wait_task(keys["rd"], j["id"])
        st, _, payload, _ = req("GET", "/v1/tasks/%s/logs" % j["id"], keys["rd"])
        check("  ...with the new value, masked in its log", fin and fin["state"] == "FINISHED"
              and b"task=***" in payload and b"4gain" not in payload, payload[-300:])
    # a stack's secret given as a plain env value is masked in the task's answers, like its command
    st, j, payload, _ = req("POST", "/v1/stacks/%s/tasks" % body["name"], keys["w1"],
                            {"command": "true", "env": {"PLAIN": "hunter2-s3cr3t-value"}})
    check("a stack's secret as a plain env value is *** in the answer", st == 201 and j["env"] == {"PLAIN": "***"}
          and b"hunter2" not in payload, payload[:300])
    if st == 201:
        wait_task(keys["rd"], j["id"])
    # a secret_env of the wrong shape is refused; the failed change's audit record masks it whole
    for shape in ("m4lformed-str1ng-secret", {"TOK": ["m4lformed-n3sted-secret"]}):
        st, _, _, _ = req("PATCH", "/v1/stacks/" + body["name"], keys["adm"], {"secret_env": shape})
        check("a secret_env that is not an object of strings is refused (400)", st == 400, st)
    # a refused body that gives a secret's value as a plain env value too: the audit record masks it there as well
    st, _, _, _ = req("PATCH", "/v1/stacks/" + body["name"], keys["adm"],
                      {"env": {"DUP": "dup1icate-s3cret-v4lue"}, "secret_env": {"DUP": "dup1icate-s3cret-v4lue"}})
    check("a stack change giving one name as plain and secret env is refused (400)", st == 400, st)
    st, _, _, _ = req("POST", "/v1/stacks", keys["adm"],
                      {"name": body["name"] + "-dup", "image": "berth/busybox:latest",
                       "env": {"DUP": "dup1icate-s3cret-v4lue"}, "secret_env": {"DUP": "dup1icate-s3cret-v4lue"}})
    check("  ...a stack create too (400)", st == 400, st)
    st, _, payload, _ = req("GET", "/v1/audit", keys["adm"])
    check("audit records never hold secret values", b"hunter2" not in payload and b"t4sk" not in payload
          and b"m4lformed" not in payload and b"dup1icate" not in payload, payload[-400:])
    st, j, _, _ = req("DELETE", "/v1/stacks/" + body["name"], keys["adm"])
    check("an admin deletes a stack", st == 200 and j == {"deleted": body["name"]}, j)


def test_locks(keys):
    s = S(3)
    st, j, _, _ = req("POST", "/v1/stacks/%s/lock" % s, keys["w1"], {"note": "maintenance"})
    check("writer w1 locks a stack", st == 200 and j["lock"]["owner"] == "w1" and j["lock"]["note"] == "maintenance", j)
    st, j, _, _ = req("POST", "/v1/stacks/%s/lock" % s, keys["w2"])
    check("writer w2 cannot take w1's lock (409)", st == 409 and j["error"] == "busy", j)
    st, j, _, _ = req("POST", "/v1/stacks/%s/tasks" % s, keys["w2"], {"command": "true"})
    check("w2 cannot run on w1's locked stack (403)", st == 403 and "locked by w1" in j["message"], j)
    st, j, _, _ = req("DELETE", "/v1/stacks/%s/lock" % s, keys["w2"])
    check("w2 cannot unlock w1's lock", st == 403, j)
    st, j, _, _ = req("DELETE", "/v1/stacks/%s/lock?force=1" % s, keys["w2"])
    check("a writer cannot force an unlock", st == 403, j)
    st, j, _, _ = req("POST", "/v1/stacks/%s/tasks" % s, keys["w1"], {"command": "echo owner-runs"})
    check("the lock owner runs tasks", st == 201, j)
    if st == 201:
        fin = wait_task(keys["w1"], j["id"])
        check("  ...to FINISHED", fin and fin["state"] == "FINISHED", fin)
    st, j, _, _ = req("DELETE", "/v1/stacks/%s/lock" % s, keys["adm"])
    check("an admin without force=1 does not unlock another key's lock", st == 403, j)
    st, j, _, _ = req("DELETE", "/v1/stacks/%s/lock?force=1" % s, keys["adm"])
    check("an admin force-unlocks", st == 200 and j["lock"] is None, j)
    st, j, _, _ = req("POST", "/v1/stacks/%s/lock" % s, keys["w2"])
    st2, j2, _, _ = req("DELETE", "/v1/stacks/%s/lock" % s, keys["w2"])
    check("w2 locks and unlocks its own lock", st == 200 and st2 == 200 and j2["lock"] is None, (j, j2))


def test_concurrency(keys):
    """20 clients over 4 stacks at once; inside each container the task records its start and end on the shared
    kernel clock (/proc/uptime); no two tasks of one stack may overlap."""
    cmd = "read a b < /proc/uptime; echo START $a; sleep 0.3; read a b < /proc/uptime; echo END $a"
    results = [None] * 20
    errors = []

    def client(i):
        try:
            transport = "unix" if i % 2 else "tcp"
            key = keys["w1"] if i % 3 else keys["w2"]
            st, j, _, _ = req("POST", "/v1/stacks/%s/tasks" % S(1 + i % 4), key, {"command": cmd}, transport)
            if st != 201:
                errors.append("submit %d -> %s %s" % (i, st, j))
                return
            # follow the log to its end, as a CI job would
            c = SRV.conn(transport, timeout=300)
            c.request("GET", "/v1/tasks/%s/logs?follow=1" % j["id"], headers={"Authorization": "Bearer " + key})
            out = c.getresponse().read().decode()
            c.close()
            results[i] = (S(1 + i % 4), j["id"], out)
        except Exception as e:  # noqa: BLE001
            errors.append("client %d: %r" % (i, e))

    def supervisors():
        """the server's supervisor processes alive now"""
        n = 0
        for pid in os.listdir("/proc"):
            try:
                with open("/proc/%s/stat" % pid) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    n += ppid == SRV.proc.pid and b"__supervise" in f.read()
            except (OSError, ValueError, IndexError):
                pass
        return n

    threads = [threading.Thread(target=client, args=(i,)) for i in range(20)]
    t0 = time.time()
    for t in threads:
        t.start()
    most = 0
    while any(t.is_alive() for t in threads):
        most = max(most, supervisors())
        time.sleep(0.05)
    for t in threads:
        t.join()
    check("20 concurrent clients submitted and followed their tasks (%.1f s)" % (time.time() - t0), not errors,
          errors[:3])
    # a queued task gets its supervisor when its turn nears (2 per stack: the running task's and the next one's),
    # not at submission: 20 queued tasks over 4 stacks never had 20 supervisors
    if os.environ.get("BERTH_STORE"):  # a fleet host runs each task in a thread of its own
        check("a fleet host starts no supervisor process: its tasks run in its threads (%d seen)" % most, most == 0)
    else:
        check("supervisors started as turns come: at most %d alive at once for 20 tasks on 4 stacks" % most,
              0 < most <= 12, most)
    spans = {}
    bad = []
    for r in results:
        if r is None:
            continue
        stack, tid, out = r
        m1, m2 = re.search(r"START ([0-9.]+)", out), re.search(r"END ([0-9.]+)", out)
        if not (m1 and m2 and "==> FINISHED" in out):
            bad.append((tid, out[-200:]))
            continue
        spans.setdefault(stack, []).append((float(m1.group(1)), float(m2.group(1)), tid))
    check("every task's followed log ends with its whole output", not bad and sum(map(len, spans.values())) == 20, bad[:2])
    overlaps = []
    for stack, v in spans.items():
        v.sort()
        for a, b in zip(v, v[1:]):
            if b[0] < a[1]:
                overlaps.append((stack, a, b))
    check("serialization holds: no two tasks of one stack overlapped", not overlaps and len(spans) == 4, overlaps[:2])
    # FIFO: on each stack the tasks ran in the store's queue order (task list is in submission order)
    rc, out, _ = berth("task", "list", "--json", "--limit", "500")
    order = [t["id"] for t in json.loads(out)["tasks"]] if rc == 0 else []
    unfair = [stack for stack, v in spans.items()
              if [tid for _, _, tid in sorted(v)] != sorted((tid for _, _, tid in v), key=lambda t: -order.index(t)
                                                             if t in order else 0)]
    check("each stack ran its tasks in submission order", rc == 0 and not unfair, unfair)


def test_followers(keys):
    st, j, _, _ = req("POST", "/v1/stacks/%s/tasks" % S(2), keys["w1"],
                      {"command": "for i in $(seq 1 300); do echo line-$i; done; sleep 1; echo end; echo err >&2"})
    tid = j["id"]
    outs = [None, None]

    def follower(n):
        c = SRV.conn("unix" if n == 0 else "tcp", timeout=120)
        c.request("GET", "/v1/tasks/%s/logs?follow=1" % tid, headers={"Authorization": "Bearer " + keys["rd"]})
        r = c.getresponse()
        outs[n] = (r.status, r.getheader("Transfer-Encoding"), r.read())
        c.close()

    ts = [threading.Thread(target=follower, args=(n,)) for n in (0, 1)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    check("a follower gets a chunked stream", outs[0] and outs[0][0] == 200 and outs[0][1] == "chunked", outs[0][:2])
    check("two followers (unix + tcp) receive identical bytes", outs[0] and outs[1] and outs[0][2] == outs[1][2])
    check("followers end when the task ends, with its last line", outs[0] and b"\nend\n" in outs[0][2])
    st, j, _, _ = req("GET", "/v1/tasks/" + tid, keys["rd"])
    check("  ...and the task is terminal by then", j["state"] == "FINISHED", j["state"])
    # the records format carries kinds: stdout (1) and stderr (2) records
    st, _, payload, r = req("GET", "/v1/tasks/%s/logs?format=records" % tid, keys["rd"])
    kinds = set()
    off = 0
    while off + 6 <= len(payload):
        ln = int.from_bytes(payload[off + 2:off + 6], "big")
        kinds.add(payload[off])
        off += 6 + ln
    check("format=records frames every record with its kind", off == len(payload) and {1, 2, 3} <= kinds, kinds)


def raw_exchange(data, transport="tcp", read_timeout=10, hold=0):
    s = socket.socket(socket.AF_UNIX if transport == "unix" else socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(read_timeout)
    s.connect(SOCK if transport == "unix" else ("127.0.0.1", SRV.port))
    try:
        s.sendall(data)
    except OSError:
        pass
    time.sleep(hold)
    buf = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            buf += d
    except (socket.timeout, OSError):
        pass
    s.close()
    return buf


def status_of(resp):
    m = re.match(rb"HTTP/1\.[01] (\d+)", resp)
    return int(m.group(1)) if m else None


def test_bad_requests(keys):
    adm, w = keys["adm"], keys["w1"]
    st, _, _, _ = req("GET", "/v1/tasks", "berth_000000000000_not-a-key", transport="tcp")
    time.sleep(0.2)
    check("a refused key is one line in the server's log, with the peer's address and never the key",
          st == 401 and "berth: GET /v1/tasks -> 401 from 127.0.0.1: invalid API key" in SRV.stderr()
          and "not-a-key" not in SRV.stderr(), SRV.stderr()[-400:])
    p = "/v1/stacks/%s/tasks" % S(4)
    # a task that must not be disturbed by anything below
    st, j, _, _ = req("POST", p, w, {"command": "for i in $(seq 1 30); do echo tick-$i; sleep 0.1; done"})
    victim = j["id"]
    cases = [
        ("malformed JSON", dict(raw=b"{not json"), 400),
        ("a JSON array instead of an object", dict(raw=b"[1,2]"), 400),
        ("trailing garbage after JSON", dict(raw=b'{"command": "true"} x'), 400),
        ("command of the wrong type", dict(body={"command": 5}), 400),
        ("skip_init of the wrong type", dict(body={"command": "true", "skip_init": "yes"}), 400),
        ("env of the wrong type", dict(body={"command": "true", "env": ["A=1"]}), 400),
        ("an env value of the wrong type", dict(body={"command": "true", "env": {"A": 1}}), 400),
        ("a bad env name", dict(body={"command": "true", "env": {"1A": "x"}}), 400),
        ("an unknown field", dict(body={"command": "true", "comand": "x"}), 400),
        ("no body", dict(raw=b""), 400),
        ("deeply nested JSON", dict(raw=b"[" * 5000 + b"]" * 5000), 400),
        ("a NUL byte in JSON", dict(raw=b'{"command": "tr\x00ue"}'), 400),
        ("an escaped NUL in a string (\\u0000)", dict(raw=b'{"command": "tr\\u0000ue"}'), 400),
        ("a \\u escape without 4 hex digits", dict(raw=b'{"command": "tr\\uZZZZue"}'), 400),
        ("a lone UTF-16 surrogate", dict(raw=b'{"command": "echo \\ud83d"}'), 400),
        ("bytes that are not UTF-8", dict(raw=b'{"command": "echo \xff"}'), 400),
        ("a field given twice", dict(raw=b'{"command": "true", "command": "echo second"}'), 400),
        ("an env variable given twice", dict(raw=b'{"command": "true", "env": {"A": "x", "A": "y"}}'), 400),
        ("a null env value (nothing to unset on a task)", dict(body={"command": "true", "env": {"A": None}}), 400),
    ]
    for what, kw, want in cases:
        st, j, payload, _ = req("POST", p, adm, **kw)
        check("%s -> %d JSON error" % (what, want), st == want and j and j["error"] == "invalid", (st, payload[:160]))
    big = b'{"command": "' + b"x" * (3 << 20) + b'"}'
    st, j, _, _ = req("POST", p, adm, raw=big)
    check("a 3 MiB body (Content-Length) -> 413 JSON", st == 413 and j and j["error"] == "invalid", st)
    chunked = b"POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nTransfer-Encoding: chunked\r\n\r\n" % (
        p.encode(), adm.encode())
    chunk = b"x" * 65536
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(48)) + b"0\r\n\r\n"
    resp = raw_exchange(chunked + body)
    check("a 3 MiB chunked body -> 413", status_of(resp) == 413, resp[:120])
    resp = raw_exchange(b"GET /v1/tasks HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200000 + b"\r\n\r\n")
    check("200 KB of headers -> 4xx", status_of(resp) is not None and 400 <= status_of(resp) < 500, resp[:100])
    resp = raw_exchange(b"GET /" + b"a" * 200000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    check("a 200 KB request line -> 4xx", status_of(resp) is not None and 400 <= status_of(resp) < 500, resp[:100])
    resp = raw_exchange(b"BLAH\r\n\r\n")
    st, _, _, _ = req("GET", "/v1")
    check("a garbage request line -> 4xx or closed, and the server goes on",
          (resp == b"" or 400 <= (status_of(resp) or 0) < 500) and st == 200, resp[:100])
    st, j, _, _ = req("GET", "/v1/nothing-here", adm, validate=False)
    check("an unknown path -> 404 not_found", st == 404 and j["error"] == "not_found", j)
    st, j, _, r = req("PUT", "/v1/tasks", adm, validate=False)
    check("a wrong method -> 405 with Allow", st == 405 and j["error"] == "invalid"
          and r.getheader("Allow") == "GET, HEAD", (j, r.getheader("Allow")))
    st, j, _, r = req("PUT", "/v1/stacks/" + S(4), adm, validate=False)
    check("  ...Allow names every method of the path", r.getheader("Allow") == "GET, HEAD, PATCH, DELETE",
          r.getheader("Allow"))
    # HEAD is GET without a body, on every GET endpoint, streams included
    st, _, payload, r = req("HEAD", "/v1/stacks/" + S(4), adm, validate=False)
    check("HEAD /v1/stacks/NAME -> 200, JSON's headers, no body",
          st == 200 and payload == b"" and r.getheader("Content-Type", "").startswith("application/json"),
          (st, payload[:80]))
    st, _, payload, _ = req("HEAD", "/v1/stacks/" + S(4), validate=False)
    check("HEAD without a key -> 401 like GET", st == 401 and payload == b"", st)
    st, j, _, _ = req("GET", "/v1/tasks?limit=1", adm)
    tid = j["tasks"][0]["id"]
    t0 = time.time()
    st, _, payload, r = req("HEAD", "/v1/tasks/%s/logs?follow=1" % tid, adm, validate=False)
    check("HEAD on a followed log answers at once with no body",
          st == 200 and payload == b"" and time.time() - t0 < 5, (st, payload[:80], time.time() - t0))
    t0 = time.time()
    st, _, payload, r = req("HEAD", "/v1/tasks/%s/events" % tid, adm, validate=False)
    check("HEAD on an event stream answers at once with no body",
          st == 200 and payload == b"" and r.getheader("Content-Type", "").startswith("text/event-stream")
          and time.time() - t0 < 5, (st, payload[:80], time.time() - t0))
    # %00 and bytes that are not UTF-8 in the path: never a shorter name, never raw bytes in the answer
    st, j, _, _ = req("DELETE", "/v1/stacks/%s%%00junk" % S(4), adm, validate=False)
    st2, _, _, _ = req("GET", "/v1/stacks/" + S(4), adm)
    check("DELETE /v1/stacks/NAME%00junk -> 404, and NAME is still there", st == 404 and st2 == 200, (st, j, st2))
    st, j, payload, _ = req("GET", "/v1/stacks/%ff%fe", adm, validate=False)
    check("a path with bytes that are not UTF-8 -> 404 whose body is UTF-8 JSON",
          st == 404 and j is not None and b"\xff" not in payload, payload[:120])
    st, j, _, _ = req("GET", "/v1/stacks/nope-%d/schedules" % os.getpid(), adm, validate=False)
    check("the schedules of a stack that does not exist -> 404", st == 404 and j["error"] == "not_found", j)
    st, j, _, _ = req("POST", "/v1/stacks/%s/schedules" % S(4), adm,
                      {"name": "never", "cron": "0 0 31 2 *", "command": "true"}, validate=False)
    check("a cron expression that never fires -> 400 (bad input, not 404)", st == 400 and "never fires" in j["message"], j)
    st, j, _, _ = req("PATCH", "/v1/stacks/" + S(4), adm, {"cpus": "5000"}, validate=False)
    check("a limit past its bound as a string (cpus \"5000\") -> 400, as the CLI's flag is", st == 400, j)
    st, j, _, _ = req("PATCH", "/v1/stacks/" + S(4), adm, {"memory": 1073741824}, validate=False)
    check("a whole number of bytes (memory 1073741824) is taken whole", st == 200 and j["memory_bytes"] == 1 << 30, j)
    st, j, _, _ = req("POST", "/v1/oidc/rotate", adm, {"bogus": 1}, validate=False)
    check("an unknown field of oidc rotate -> 400 (nothing rotated)", st == 400, j)
    st, j, _, _ = req("DELETE", "/v1/stacks/%s/lock?force=maybe" % S(4), adm, validate=False)
    check("a yes/no query parameter that is neither -> 400", st == 400 and "force" in j["message"], j)
    # a policy whose pattern cannot be evaluated denies (403), never a 500
    pol = {"name": "slow-%d" % os.getpid(), "decision": "deny", "command": "^(a+)+$", "stacks": [S(4)]}
    st, j, _, _ = req("POST", "/v1/policies", adm, pol, validate=False)
    st, j, _, _ = req("POST", p, w, {"command": "a" * 40 + "!"}, validate=False)
    check("a policy pattern past its match limit refuses the task (403, not 500)",
          st == 403 and j["error"] == "denied" and "could not match" in j["message"], (st, j))
    req("DELETE", "/v1/policies/" + pol["name"], adm, validate=False)
    # a refused webhook is in the audit trail (without its URL or secret)
    st, j, _, _ = req("POST", "/v1/webhooks", adm, {"name": "bad-hook", "url": "http://:80/", "secret": "s3cr3t-hook",
                                                      "events": ["audit"]}, validate=False)
    st2, a, payload, _ = req("GET", "/v1/audit", adm)
    refused = [x for x in a["records"] if x["action"] == "webhook.add" and x["target"] == "bad-hook"]
    check("a refused webhook (400) is in the audit trail, its secret is not",
          st == 400 and refused and refused[-1]["outcome"] != "ok" and b"s3cr3t-hook" not in payload, (st, refused[-1:]))
    st, j, _, _ = req("GET", "/v1/tasks?limit=abc", adm, validate=False)
    check("a bad query value -> 400", st == 400 and j["error"] == "invalid", j)
    st, j, _, _ = req("GET", "/v1/tasks?state=SLEEPING", adm, validate=False)
    check("an unknown state filter -> 400", st == 400, j)
    st, j, _, r = req("GET", "/v1/tasks", "berth_000000000000_" + "A" * 43)
    check("an unknown key -> 401 with WWW-Authenticate", st == 401 and r.getheader("WWW-Authenticate"), j)
    st, j, _, _ = req("GET", "/v1/tasks", None, headers={"Authorization": "Basic Zm9vOmJhcg=="})
    check("a non-Bearer authorization -> 401", st == 401, j)
    # slow clients: 40 connections trickle half a request; the server keeps answering others, and drops them
    slow = []
    for _ in range(40):
        s = socket.create_connection(("127.0.0.1", SRV.port))
        s.sendall(b"POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        slow.append(s)
    t0 = time.time()
    st, j, _, _ = req("GET", "/v1/tasks?limit=1", keys["rd"])
    check("slow clients do not block others (answer in %.0f ms)" % ((time.time() - t0) * 1000), st == 200)
    time.sleep(3.5)  # the server runs with --client-timeout 2s
    closed = 0
    for s in slow:
        s.settimeout(2)
        try:
            d = s.recv(100)
            closed += 1 if d == b"" or d.startswith(b"HTTP/1.1 4") else 0
        except OSError:
            closed += 1
        s.close()
    check("idle slow clients are disconnected after the client timeout (%d/40)" % closed, closed == 40)
    fin = wait_task(keys["rd"], victim)
    st, _, payload, _ = req("GET", "/v1/tasks/%s/logs" % victim, keys["rd"])
    check("a task running meanwhile was not disturbed", fin and fin["state"] == "FINISHED" and b"tick-30" in payload,
          fin)


def test_cli_client(keys):
    env = {"BERTH_SERVER": SRV.url("unix"), "BERTH_API_KEY": keys["w1"]}
    rc, out, err = berth("task", "run", S(1), "--", "echo to-stdout; echo to-stderr >&2; exit 3", env=env)
    check("client task run: exit status of the command (3)", rc == 3, (rc, err))
    check("client task run: stdout carries exactly the command's stdout", out == "to-stdout\n", repr(out))
    check("client task run: stderr has the rest", "to-stderr" in err and "submitted on stack" in err, err)
    rc, out, err = berth("task", "run", S(1), "--json", "--", "echo j", env=env)
    check("client task run --json prints the final record", rc == 0 and json.loads(out)["state"] == "FINISHED", out)
    rc, out, err = berth("--server", SRV.url("tcp"), "task", "run", S(2), "--detach", "--", "sleep 0.5",
                         env={"BERTH_API_KEY": keys["w1"]})
    tid = out.strip()
    check("--server URL (tcp) with --detach prints the id", rc == 0 and len(tid) == 26, (rc, out, err))
    wait_task(keys["w1"], tid)
    for args in (["task", "show", tid], ["task", "show", tid, "--json"], ["task", "list", "--stack", S(2)],
                 ["task", "logs", tid], ["stack", "show", S(2)], ["stack", "list"], ["stack", "show", S(1), "--json"]):
        r_local = berth(*args)
        r_client = berth(*args, env=env)
        check("`berth %s` is the same locally and through the server" % " ".join(args[:2] + args[3:]),
              unclocked(r_local) == unclocked(r_client), (r_local[1][:300], r_client[1][:300], r_client[2]))
    rc_l, out_l, _ = berth("doctor")
    rc_c, out_c, _ = berth("doctor", env=env)
    check("`berth doctor` is the same locally and through the server", (rc_l, out_l) == (rc_c, out_c), (out_l, out_c))
    rc, out, err = berth("task", "show", "zzzzzzzzzz", env=env)
    rc2, out2, err2 = berth("task", "show", "zzzzzzzzzz")
    check("an unknown task: same message and exit code", (rc, err) == (rc2, err2), (rc, err, rc2, err2))
    rc, out, err = berth("task", "run", S(2), "--", "true", env={"BERTH_SERVER": SRV.url("tcp"),
                                                                  "BERTH_API_KEY": keys["wa"]})
    check("client: a scoped writer refused on another stack exits 125", rc == 125 and "may not act" in err, err)
    rc, out, err = berth("task", "list", env={"BERTH_SERVER": SRV.url("tcp"), "BERTH_API_KEY": "nope"})
    check("client: a bad key exits non-zero with one line", rc != 0 and "invalid API key" in err, err)
    rc, out, err = berth("task", "list", env={"BERTH_SERVER": "unix:" + os.path.join(TMP, "nothing.sock"),
                                              "BERTH_API_KEY": "x"})
    check("client: no server -> one clear line", rc != 0 and "cannot talk to the berth server" in err, err)
    # cancel: a queued task behind a running one
    rc, t1, _ = berth("task", "run", S(3), "--detach", "--", "sleep 3", env=env)
    rc, t2, _ = berth("task", "run", S(3), "--detach", "--", "echo never", env=env)
    rc, out, err = berth("task", "cancel", t2.strip(), env={"BERTH_SERVER": SRV.url("unix"),
                                                            "BERTH_API_KEY": keys["w2"]})
    check("client: a writer cannot cancel another key's task", rc == 125 and rc != 0, (rc, out, err))
    rc, out, err = berth("task", "cancel", t2.strip(), env=env)
    check("client: the owner cancels its queued task", rc == 0 and out.strip() == "task %s CANCELED" % t2.strip(),
          (out, err))
    # Ctrl-C stops following only
    p = subprocess.Popen([BERTH, "task", "run", S(4), "--", "sleep 4; echo done-after-ctrl-c"],
                         env=dict(ENV, **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.5)
    t0 = time.time()
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=20)
    check("client: Ctrl-C stops following at once (exit 130)", p.returncode == 130 and time.time() - t0 < 3,
          (p.returncode, err[-300:]))
    m = re.search(rb"task ([0-9a-z]{26}) submitted", err)
    fin = wait_task(keys["w1"], m.group(1).decode()) if m else None
    check("  ...and the task goes on to FINISHED", fin and fin["state"] == "FINISHED", fin)
    wait_task(keys["w1"], t1.strip())


def test_cli_governance(keys):
    env = {"BERTH_SERVER": SRV.url("tcp"), "BERTH_API_KEY": keys["adm"]}
    r1 = berth("image", "allow", "berth/*", env=env)
    check("client image allow prints the normalized rule", r1[0] == 0 and r1[1] == "allowed docker.io/berth/*:latest\n",
          r1)
    r_local, r_client = berth("image", "allow", "berth/*"), berth("image", "allow", "berth/*", env=env)
    check("client and local agree on an existing rule", r_local == r_client and "already exists" in r_client[1],
          (r_local, r_client))
    for args in (["image", "list"], ["image", "list", "--json"], ["image", "check", "berth/busybox:latest"],
                 ["image", "check", "alpine", "--json"], ["image", "check", "alpine"], ["policy", "list"]):
        a, b = berth(*args), berth(*args, env=env)
        check("`berth %s` is the same locally and through the server" % " ".join(args), a == b, (a, b))
    pol = os.path.join(TMP, "pol.json")
    with open(pol, "w") as f:
        json.dump([{"name": "no-destroy", "command": "^terraform\\s+destroy", "decision": "deny", "message": "no"},
                   {"name": "weekend", "stacks": ["prod-*"], "when": {"weekdays": ["sat"]}, "decision": "deny"}], f)
    r = berth("policy", "add", pol, env=env)
    check("client policy add", r[0] == 0 and r[1] == "added 2 policy rules: no-destroy, weekend\n", r)
    a, b = berth("policy", "list"), berth("policy", "list", env=env)
    check("`berth policy list` with rules is the same locally and through the server", a == b and "weekend" in a[1],
          (a, b))
    with open(pol, "w") as f:
        f.write('{"name": "bad", "decision": "maybe"}')
    a, b = berth("policy", "add", pol), berth("policy", "add", pol, env=env)
    check("a bad policy file: same message and exit code", (a[0], a[2]) == (b[0], b[2]) and a[0] != 0, (a, b))
    for name in ("no-destroy", "weekend"):
        r = berth("policy", "remove", name, env=env)
        check("client policy remove %s" % name, r[0] == 0 and r[1] == "removed policy rule %s\n" % name, r)
    r = berth("image", "remove", "berth/*", env=env)
    check("client image remove", r[0] == 0 and r[1] == "removed image rule docker.io/berth/*:latest\n", r)
    r = berth("image", "allow", "berth/*", env={"BERTH_SERVER": SRV.url("tcp"), "BERTH_API_KEY": keys["w1"]})
    check("client image allow as a writer is refused (125)", r[0] == 125 and "admin" in r[2], r)


def test_cli_stack_edit(keys):
    """stack create/update/show/list/state through the server: the same output and exit codes as local mode, the
    same stored fields; secret values only in request bodies."""
    env = {"BERTH_SERVER": SRV.url("unix"), "BERTH_API_KEY": keys["adm"]}
    proj = os.path.join(TMP, "proj-edit")
    os.makedirs(os.path.join(proj, "sub"))
    c, l = "t%s-ec" % RUN_ID, "t%s-el" % RUN_ID
    secret = "s3cr3t-edit-%s" % RUN_ID
    flags = ["--image", "berth/runner:latest", "--project-dir", "proj-edit", "--subdir", "sub/", "--env", "A=1",
             "--secret-env", "TOKEN=" + secret, "--secret-env", "FROMENV", "--memory", "512m", "--cpus", "1.5",
             "--pids", "100", "--timeout", "10m", "--idle-timeout", "90s", "--pull", "never", "--persist", "out",
             "--label", "x", "--label", "y", "--init", "echo init", "--after-run", "echo bye", "--keep-versions", "3"]
    cwd_env = {"FROMENV": "from-env-" + secret}

    def run(*args, client=False):
        p = subprocess.run([BERTH, *args], env=dict(ENV, **cwd_env, **(env if client else {})), cwd=TMP,
                           capture_output=True, timeout=120)
        return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")

    def same(a, b, name_a, name_b):
        return (a[0], a[1].replace(name_a, "N"), a[2].replace(name_a, "N")) == \
               (b[0], b[1].replace(name_b, "N"), b[2].replace(name_b, "N"))

    def show_without_times(name, client=False):
        rc, out, err = run("stack", "show", name, client=client)
        return rc, "".join(x for x in out.splitlines(True) if not x.startswith(("created:", "updated:"))) \
            .replace(name, "N"), err

    rc_c = run("stack", "create", c, *flags, client=True)
    rc_l = run("stack", "create", l, *flags)
    check("client stack create: the same output and exit code as local", same(rc_c, rc_l, c, l) and rc_c[0] == 0,
          (rc_c, rc_l))
    check("client and local create store the same fields", show_without_times(c) == show_without_times(l),
          (show_without_times(c), show_without_times(l)))
    st, j, payload, _ = req("GET", "/v1/stacks/" + c, keys["adm"])
    check("  ...a project dir resolved to its real path, the subdir normalized, secrets ***",
          st == 200 and j["project_dir"] == os.path.realpath(proj) and j["subdir"] == "sub"
          and j["secret_env"] == {"TOKEN": "***", "FROMENV": "***"} and secret.encode() not in payload, j)
    for args in (["stack", "show", c], ["stack", "show", c, "--json"], ["stack", "list"], ["stack", "list", "--json"]):
        a, b = run(*args), run(*args, client=True)
        check("`berth %s` is the same locally and through the server" % " ".join(args).replace(c, "NEW"), a == b,
              (a[1][:300], b[1][:300], b[2]))
    upd = ["--env", "TOKEN=now-plain", "--unset-env", "A", "--secret-env", "B=" + secret, "--label", "",
           "--subdir", "", "--memory", "1g", "--before-perform", "echo a", "--before-perform", "echo b"]
    rc_c, rc_l = run("stack", "update", c, *upd, client=True), run("stack", "update", l, *upd)
    check("client stack update: the same output and exit code as local", same(rc_c, rc_l, c, l) and rc_c[0] == 0,
          (rc_c, rc_l))
    check("client and local update leave the same fields (a key moved from secret to plain)",
          show_without_times(c) == show_without_times(l) and "TOKEN=now-plain" in show_without_times(c)[1],
          (show_without_times(c), show_without_times(l)))
    bad = [(["update", "{}", "--unset-env", "NOPE"], "is not set"),
           (["update", "{}", "--unset-secret-env", "A"], "is not set"),
           (["update", "{}", "--subdir", "nosuch"], "not a directory"),
           (["update", "{}", "--project-dir", "/no/such/dir"], "does not exist"),
           (["update", "{}", "--memory", "lots"], "--memory"),
           (["update", "{}", "--timeout", "0s"], "positive"),
           (["update", "{}", "--network", "host"], "network"),
           (["update", "{}", "--bogus"], "unknown flag"),
           (["update", "{}", "--image"], "needs a value"),
           (["update", "{}", "extra"], "unexpected argument"),
           (["create", "{}", "--image", "berth/runner:latest"], "already exists"),
           (["create", "t%s-none" % RUN_ID], "needs --image"),
           (["create", "bad name!", "--image", "x"], "invalid"),
           (["update", "t%s-missing" % RUN_ID, "--label", "x"], "does not exist"),
           (["create", "t%s-x" % RUN_ID, "--image", "x", "--unset-env", "A"], "only for")]
    wrong = []
    for args, what in bad:
        a = run("stack", *[x.replace("{}", l) for x in args])
        b = run("stack", *[x.replace("{}", c) for x in args], client=True)
        if not (same(a, b, l, c) and a[0] != 0 and what in a[2]):
            wrong.append((args, a, b))
    check("%d bad create/update command lines: the same one-line error and exit code in both modes" % len(bad),
          not wrong, wrong[:3])
    check("  ...and they changed nothing", show_without_times(c) == show_without_times(l))
    rc, out, err = berth("stack", "update", c, "--label", "z",
                         env={"BERTH_SERVER": SRV.url("unix"), "BERTH_API_KEY": keys["w1"]})
    check("client stack update as a writer is refused (125)", rc == 125 and "admin" in err, (rc, err))
    st, _, payload, _ = req("GET", "/v1/audit", keys["adm"])
    logs = open(os.path.join(TMP, "serve.log"), "rb").read() + SRV.stderr().encode()
    check("no secret value in the audit trail or the server's output",
          secret.encode() not in payload and secret.encode() not in logs and b'"stack.update"' in payload)
    # state: a task through the client writes a persisted path
    env_w = {"BERTH_SERVER": SRV.url("unix"), "BERTH_API_KEY": keys["w1"]}
    for a in ([], ["--json"]):
        x, y = run("stack", "state", c, *a), run("stack", "state", c, *a, client=True)
        check("`berth stack state %s` (no versions) is the same locally and through the server" % " ".join(a),
              x == y and x[0] == 0, (x, y))
    rc, out, err = berth("task", "run", c, "--", "mkdir -p out && echo kept > out/f", env=env_w)
    check("a task through the client persists a path", rc == 0, (rc, err))
    for a in ([], ["--json"]):
        x, y = run("stack", "state", c, *a), run("stack", "state", c, *a, client=True)
        check("`berth stack state %s` (one version) is the same locally and through the server" % " ".join(a),
              x == y and x[0] == 0 and ("VERSION" in x[1] or '"version"' in x[1]), (x, y))
    st, j, _, _ = req("GET", "/v1/stacks/%s/state" % S(2), keys["wa"])
    check("a scoped key cannot read another stack's state (403)", st == 403, (st, j))
    x, y = run("stack", "state", "t%s-missing" % RUN_ID), run("stack", "state", "t%s-missing" % RUN_ID, client=True)
    check("state of an unknown stack: the same error and exit code", x == y and x[0] != 0, (x, y))
    for n in (c, l):
        berth("stack", "delete", n)


def test_cli_policy_test_and_verify(keys):
    env = {"BERTH_SERVER": SRV.url("tcp"), "BERTH_API_KEY": keys["rd"]}
    pol = os.path.join(TMP, "pol-test.json")
    with open(pol, "w") as f:
        json.dump([{"name": "no-destroy", "command": "^terraform\\s+destroy", "decision": "deny", "message": "no"},
                   {"name": "writers-ok", "roles": ["writer"], "decision": "allow"},
                   {"name": "night", "when": {"hours": "22-06"}, "stacks": ["t%s-*" % RUN_ID],
                    "decision": "deny", "message": "not at night"}], f)
    assert berth("policy", "add", pol)[0] == 0
    _, before, _, _ = req("GET", "/v1/audit", keys["adm"])
    cases = [["--actor", "bob", "--role", "writer", "--", "terraform", "destroy"],
             ["--actor", "bob", "--role", "writer", "--at", "2024-05-01T12:00Z", "--", "terraform", "plan"],
             ["--actor", "bob", "--role", "writer", "--at", "2024-05-01T23:00Z", "--", "terraform", "plan"],
             ["--actor", "bob", "--role", "admin", "--json", "--at", "2024-05-01T12:00Z", "--", "echo", "hi"],
             ["--actor", "bob", "--role", "writer", "--json", "--", "terraform", "destroy", "-auto-approve"]]
    for extra in cases:
        a = berth("policy", "test", S(1), *extra)
        b = berth("policy", "test", S(1), *extra, env=env)
        check("`berth policy test %s` is the same locally and through the server (exit %d)"
              % (" ".join(extra), a[0]), a == b and a[0] in (0, 1), (a, b))
    bad = [["--role", "root", "--", "true"], ["--at", "yesterday-ish", "--", "true"], ["--"], [],
           ["--bogus", "--", "true"]]
    for extra in bad:
        a, b = berth("policy", "test", S(1), *extra), berth("policy", "test", S(1), *extra, env=env)
        check("bad `policy test %s`: the same error and exit code" % " ".join(extra), a == b and a[0] == 125, (a, b))
    a = berth("policy", "test", "t%s-missing" % RUN_ID, "--", "true")
    b = berth("policy", "test", "t%s-missing" % RUN_ID, "--", "true", env=env)
    check("policy test on an unknown stack: the same error and exit code", a == b and a[0] != 0, (a, b))
    rc, out, err = berth("policy", "test", S(1), "--json", "--at", "2024-05-01T12:00Z", "--", "terraform", "plan",
                         env=env)
    check("policy test defaults to the key's role (a reader: no writers-ok match)",
          rc == 0 and json.loads(out)["matched"] == [], (rc, out, err))
    rc, out, err = berth("policy", "test", S(2), "--", "true", env={"BERTH_SERVER": SRV.url("tcp"),
                                                                    "BERTH_API_KEY": keys["wa"]})
    check("policy test: a scoped key refused on another stack (125)", rc == 125 and "may not act" in err, (rc, err))
    _, after, _, _ = req("GET", "/v1/audit", keys["adm"])
    check("policy test records nothing", before == after)
    st, j, _, _ = req("POST", "/v1/policies/test", keys["rd"], {"stack": S(1), "command": "x", "role": "root"})
    check("POST /v1/policies/test with a bad role: 400", st == 400 and j["error"] == "invalid", j)
    st, j, _, _ = req("POST", "/v1/policies/test", keys["rd"], {"stack": S(1), "command": 3})
    check("POST /v1/policies/test with a number for command: 400", st == 400 and "command" in j["message"], j)
    for name in ("no-destroy", "writers-ok", "night"):
        berth("policy", "remove", name)
    # audit verify
    adm = {"BERTH_SERVER": SRV.url("unix"), "BERTH_API_KEY": keys["adm"]}
    for a in ([], ["--json"]):
        x, y = berth("audit", "verify", *a), berth("audit", "verify", *a, env=adm)
        check("`berth audit verify %s` is the same locally and through the server" % " ".join(a),
              x == y and x[0] == 0 and ("intact" in x[1]), (x, y))
    x, y = berth("audit", "verify", "--since", "1h"), berth("audit", "verify", "--since", "1h", env=adm)
    check("audit verify --since: the same error in both modes", x == y and x[0] == 125, (x, y))
    rc, out, err = berth("audit", "verify", env={"BERTH_SERVER": SRV.url("unix"), "BERTH_API_KEY": keys["w1"]})
    check("client audit verify as a writer is refused (125)", rc == 125 and "admin" in err, (rc, err))


def test_keys_api(keys):
    st, j, _, _ = req("POST", "/v1/keys", keys["adm"], {"name": "api-made", "role": "reader"})
    check("an admin creates a key through the API; the answer holds it once", st == 201 and j["key"].startswith("berth_"),
          j)
    newkey = j["key"] if st == 201 else ""
    st, j2, _, _ = req("GET", "/v1/stacks", newkey)
    check("  ...and it works", st == 200)
    st, j3, payload, _ = req("GET", "/v1/keys", keys["adm"])
    names = [k["name"] for k in j3["keys"]]
    check("key list shows last use, never a secret",
          "api-made" in names and newkey.encode() not in payload and
          next(k for k in j3["keys"] if k["name"] == "api-made")["last_used_at"] is not None, j3)
    st, _, _, _ = req("DELETE", "/v1/keys/api-made", keys["adm"])
    st2, j4, _, _ = req("GET", "/v1/stacks", newkey)
    check("a revoked key is refused on the next request", st == 200 and st2 == 401, (st, st2))
    st, j, _, _ = req("POST", "/v1/images/rules", keys["adm"], {"pattern": "berth/*:latest", "kind": "allow"})
    st2, j2, _, _ = req("GET", "/v1/images/check?ref=berth/busybox:latest", keys["rd"])
    st3, _, _, _ = req("DELETE", "/v1/images/rules?pattern=berth/*:latest", keys["adm"])
    check("image rules through the API (add, check, remove)", st == 201 and j2["allowed"] is True and st3 == 200,
          (st, j2, st3))
    pol = {"name": "no-destroy", "command": "^terraform\\s+destroy\\b", "decision": "deny", "message": "no destroy"}
    st, j, _, _ = req("POST", "/v1/policies", keys["adm"], pol)
    st2, j2, _, _ = req("POST", "/v1/stacks/%s/tasks" % S(1), keys["w1"], {"command": "terraform destroy -auto-approve"})
    st3, _, _, _ = req("DELETE", "/v1/policies/no-destroy", keys["adm"])
    check("policies through the API deny a task (403) and are removed", st == 201 and st2 == 403 and
          "no destroy" in j2["message"] and st3 == 200, (st, j2, st3))
    st, j, _, _ = req("GET", "/v1/audit", keys["adm"])
    acts = {(r["actor"], r["action"]) for r in j["records"]}
    check("the audit trail attributes actions to keys", {("w1", "task.submit"), ("w1", "stack.lock"),
                                                         ("adm", "key.create"), ("adm", "policy.add")} <= acts, acts)
    st, j, _, _ = req("GET", "/v1/tasks?limit=1", keys["rd"])
    check("tasks record triggered_by key:NAME", j["tasks"][0]["triggered_by"].startswith("key:"), j["tasks"][0])


def test_prune(keys):
    """POST /v1/tasks/prune: admins only, bad bodies are one 400, a dry run
    changes nothing, a pruned task and its log are gone and the audit trail says who pruned."""
    st, j, _, _ = req("POST", "/v1/stacks/%s/tasks" % S(4), keys["w1"], {"command": "echo prune-me"})
    tid = j.get("id", "")
    wait_task(keys["rd"], tid)
    time.sleep(1.1)  # a task that ended in the last second is never pruned
    st, j, _, _ = req("POST", "/v1/tasks/prune", keys["w1"], {"older_than": "1s", "stack": S(4)})
    check("a writer may not prune tasks (403)", st == 403, (st, j))
    for body, what in (({"stack": S(4)}, "older_than"), ({"older_than": 5}, "older_than"),
                       ({"older_than": "1s", "bogus": 1}, "bogus"), ({"older_than": "1s", "dry_run": "yes"}, "dry_run"),
                       ({"older_than": "1s", "stack": "a b"}, "stack"), ({"older_than": "0s"}, "more than 0"),
                       ({"older_than": "30"}, "needs a unit")):
        st, j, _, _ = req("POST", "/v1/tasks/prune", keys["adm"], body)
        check("prune with %s -> 400 naming `%s`" % (json.dumps(body), what),
              st == 400 and j["error"] == "invalid" and what in j["message"], (st, j))
    st, j, _, _ = req("POST", "/v1/tasks/prune", keys["adm"], {"older_than": "1s", "stack": S(4), "dry_run": True})
    st2, _, _, _ = req("GET", "/v1/tasks/" + tid, keys["rd"])
    check("a dry run counts the stack's ended tasks and changes nothing",
          st == 200 and j["dry_run"] is True and j["tasks"] >= 1 and j["log_bytes"] > 0 and st2 == 200, (st, j, st2))
    st, j, _, _ = req("POST", "/v1/tasks/prune", keys["adm"], {"older_than": "1s", "stack": S(4)})
    st2, _, _, _ = req("GET", "/v1/tasks/" + tid, keys["rd"])
    st3, _, _, _ = req("GET", "/v1/tasks/%s/logs" % tid, keys["rd"])
    check("prune deletes them: the task and its log are 404",
          st == 200 and j["dry_run"] is False and j["tasks"] >= 1 and j["stack"] == S(4) and st2 == 404 and st3 == 404,
          (st, j, st2, st3))
    st, j, _, hd = req("GET", "/v1/tasks/prune", keys["adm"])
    check("GET /v1/tasks/prune -> 405 Allow: POST (not \"task `prune` does not exist\")",
          st == 405 and hd.getheader("Allow") == "POST" and "not allowed" in j["message"], (st, j, hd))
    st, j, _, _ = req("GET", "/v1/tasks?host=", keys["rd"])
    check("GET /v1/tasks?host= (empty) -> 400, not every task", st == 400 and "host" in j["message"], (st, j))
    st, j, _, _ = req("GET", "/v1/audit", keys["adm"])
    check("  ...and the audit trail says who pruned what",
          any(r["actor"] == "adm" and r["action"] == "task.prune" and r["target"] == S(4) for r in j["records"]), j)


def test_restart(keys):
    global SRV
    st, j, _, _ = req("POST", "/v1/stacks/%s/tasks" % S(1), keys["w1"], {"command": "sleep 30"})
    tid = j["id"]
    st, j2, _, _ = req("POST", "/v1/stacks/%s/tasks" % S(1), keys["w1"], {"command": "echo queued-behind"})
    queued = j2["id"]
    wait_task(keys["w1"], tid, states=("PERFORMING",), timeout=60)
    SRV.proc.kill()
    SRV.proc.wait()
    SRV = Server("--client-timeout", "2s")
    fin = wait_task(keys["w1"], tid, timeout=30)
    check("after a SIGKILL the interrupted task is FAILED `executor interrupted`",
          fin and fin["state"] == "FAILED" and fin["reason"] == "executor interrupted", fin)
    time.sleep(0.5)
    check("  ...and no container is left", containers_of(tid) == [], containers_of(tid))
    fin2 = wait_task(keys["w1"], queued, timeout=30)
    if os.environ.get("BERTH_STORE"):  # a fleet: a queued task is the store's, not a host's; it runs on
        check("  ...a task queued behind it is not lost: it runs once the stack is free (a fleet's queue)",
              fin2 and fin2["state"] == "FINISHED", fin2)
    else:
        check("  ...a task queued behind it is FAILED too (its supervisor died with the server)",
              fin2 and fin2["state"] == "FAILED", fin2)
    st, j, _, _ = req("POST", "/v1/stacks/%s/tasks" % S(1), keys["w1"], {"command": "echo after-restart"})
    fin3 = wait_task(keys["w1"], j["id"], timeout=60) if st == 201 else None
    check("the queue goes on after the restart", fin3 and fin3["state"] == "FINISHED", fin3)


def test_sigterm(keys):
    global SRV
    SRV.proc.kill()
    SRV.proc.wait()
    SRV = Server("--grace", "20s")
    st, j, _, _ = req("POST", "/v1/stacks/%s/tasks" % S(2), keys["w1"], {"command": "sleep 2; echo graceful"})
    perf = j["id"]
    st, j, _, _ = req("POST", "/v1/stacks/%s/tasks" % S(2), keys["w1"], {"command": "echo never-started"})
    queued = j["id"]
    wait_task(keys["w1"], perf, states=("PERFORMING",), timeout=60)
    t0 = time.time()
    SRV.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    try:
        c = SRV.conn("tcp", timeout=2)
        c.request("GET", "/")
        c.getresponse()
        accepting = True
    except OSError:
        accepting = False
    check("after SIGTERM the server stops accepting", not accepting)
    rc = SRV.proc.wait(timeout=40)
    took = time.time() - t0
    check("SIGTERM: the server exits 0 once the performing task is done (%.1f s)" % took, rc == 0 and took < 15, rc)
    SRV = Server("--client-timeout", "2s")
    a = wait_task(keys["w1"], perf, timeout=10)
    b = wait_task(keys["w1"], queued, timeout=10)
    check("  ...the PERFORMING task finished within the grace period", a and a["state"] == "FINISHED", a)
    if os.environ.get("BERTH_STORE"):  # a fleet: queued work is left to the other hosts
        b = wait_task(keys["w1"], queued, timeout=60)
        check("  ...the task that had not started is left in the queue, and runs (a fleet's queue)",
              b and b["state"] == "FINISHED", b)
    else:
        check("  ...the task that had not started is recorded as interrupted",
              b and b["state"] == "FAILED" and b["reason"] == "executor interrupted", b)
    # grace exceeded
    SRV.proc.kill()
    SRV.proc.wait()
    SRV = Server("--grace", "1s")
    st, j, _, _ = req("POST", "/v1/stacks/%s/tasks" % S(2), keys["w1"], {"command": "sleep 60"})
    long_id = j["id"]
    wait_task(keys["w1"], long_id, states=("PERFORMING",), timeout=60)
    SRV.proc.send_signal(signal.SIGTERM)
    rc = SRV.proc.wait(timeout=30)
    rc2, out, _ = berth("task", "show", long_id, "--json")
    t = json.loads(out) if rc2 == 0 else {}
    check("a task still performing after the grace period is FAILED `executor interrupted`",
          rc == 0 and t.get("state") == "FAILED" and t.get("reason") == "executor interrupted", (rc, t))
    check("  ...and its container is removed", containers_of(long_id) == [], containers_of(long_id))
    SRV = Server("--client-timeout", "2s")


def tls_server():
    """A second server speaking HTTPS with a fresh self-signed certificate: (process, port, cert path), or None
    without openssl."""
    cert, key = os.path.join(TMP, "cert.pem"), os.path.join(TMP, "key.pem")
    if shutil.which("openssl") is None:
        return None
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   capture_output=True, check=True)
    log = os.path.join(TMP, "tls-%d.err" % time.time_ns())
    # beside the main server, on a fleet store a host of another name
    p = subprocess.Popen([BERTH, "serve", "--listen", "tcp:127.0.0.1:0", "--tls-cert", cert, "--tls-key", key,
                          "--host", "tls-%d" % os.getpid()],
                         env=ENV, stderr=open(log, "wb"))
    port = None
    for _ in range(100):
        m = re.search(r"listening on tcp:127\.0\.0\.1:(\d+) \(TLS\)", open(log).read())
        if m:
            port = int(m.group(1))
            break
        time.sleep(0.05)
    return p, port, cert


def test_tls(keys):
    tls = tls_server()
    if tls is None:
        check("TLS (skipped: no openssl)", True)
        return
    p, port, cert = tls
    try:
        rc, out, err = berth("task", "list", "--limit", "1", "--json",
                             env={"BERTH_SERVER": "https://127.0.0.1:%d" % port, "BERTH_API_KEY": keys["rd"],
                                  "BERTH_SERVER_CA": cert})
        check("TLS: the CLI talks HTTPS with the server's certificate", rc == 0 and '"tasks"' in out, (rc, err))
        rc, out, err = berth("task", "list", env={"BERTH_SERVER": "https://127.0.0.1:%d" % port,
                                                  "BERTH_API_KEY": keys["rd"]})
        check("TLS: an unknown certificate is refused by the client", rc != 0, (rc, err))
    finally:
        p.terminate()
        p.wait()


def check_sanitizer_reports():
    """A server that crashed or reported a sanitizer error fails the test, with its stderr shown."""
    for name in sorted(os.listdir(TMP)):
        if name.startswith(("serve-", "tls-")) and name.endswith(".err"):
            text = open(os.path.join(TMP, name), errors="replace").read()
            if "Sanitizer" in text or "runtime error" in text:
                at = max(0, min(i for i in (text.find("Sanitizer"), text.find("runtime error")) if i >= 0) - 200)
                check("server log %s is free of sanitizer reports" % name, False, text[at:at + 4000])


def run_suite(tests):
    """For the suites that reuse this set-up (sse_test.py, ui_server_test.py): a store with stacks and keys, one
    server, each test(keys), the OpenAPI check of every JSON answer; prints the count and exits."""
    global SRV
    keys = setup()
    SRV = Server()
    try:
        for t in tests:
            t(keys)
        check("every JSON answer matched docs/openapi.yaml (%d problems)" % len(schema_problems), not schema_problems,
              schema_problems[:5])
    finally:
        SRV.proc.terminate()
        try:
            SRV.proc.wait(timeout=70)
        except subprocess.TimeoutExpired:
            SRV.proc.kill()
        for n in range(1, 5):
            ids = subprocess.run(["docker", "ps", "-aq", "--filter", "label=berth.stack=" + S(n)],
                                 capture_output=True).stdout.decode().split()
            if ids:
                subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)
        check_sanitizer_reports()
        shutil.rmtree(TMP, ignore_errors=True)
    print("%d passed, %d failed" % (passes, fails))
    sys.exit(1 if fails else 0)


def main():
    global SRV
    keys = setup()
    test_keys(keys)
    SRV = Server("--client-timeout", "2s")
    try:
        st, j, _, _ = req("GET", "/v1")
        check("GET /v1 answers without a key", st == 200 and j["name"] == "berth", j)
        st, j, _, _ = req("GET", "/", headers={"Accept": "application/json"})
        check("GET / asking for JSON answers the same", st == 200 and j["name"] == "berth", j)
        test_store_reuse(keys)
        role_matrix(keys, "unix")
        role_matrix(keys, "tcp")
        test_scope_and_secrets(keys)
        test_locks(keys)
        test_followers(keys)
        test_log_reader_reuse(keys)
        test_concurrency(keys)
        test_bad_requests(keys)
        test_cli_client(keys)
        test_cli_governance(keys)
        test_cli_stack_edit(keys)
        test_cli_policy_test_and_verify(keys)
        test_keys_api(keys)
        test_prune(keys)
        test_restart(keys)
        test_sigterm(keys)
        test_tls(keys)
        check("every JSON answer matched docs/openapi.yaml (%d problems)" % len(schema_problems), not schema_problems,
              schema_problems[:5])
    finally:
        if SRV and SRV.proc.poll() is None:
            SRV.proc.terminate()
            try:
                SRV.proc.wait(timeout=70)
            except subprocess.TimeoutExpired:
                SRV.proc.kill()
        left = subprocess.run(["docker", "ps", "-aq", "--filter", "label=berth.stack=" + S(1)], capture_output=True)
        for n in range(1, 5):
            ids = subprocess.run(["docker", "ps", "-aq", "--filter", "label=berth.stack=" + S(n)],
                                 capture_output=True).stdout.decode().split()
            if ids:
                subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)
        del left
        check_sanitizer_reports()
        shutil.rmtree(TMP, ignore_errors=True)
    print("%d passed, %d failed" % (passes, fails))
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
