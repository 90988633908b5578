"""The web UI in a real browser: headless Chromium (Selenium) against a real `berth serve` and real tasks.

Reuses tests/integration/server_test.py's store, stacks, keys and server. The browser talks to the server through a
small TCP proxy of this file, so the test can cut its connections mid-stream (the live log must then resume without
a duplicated or missing line). Screenshots of every screen go to $BERTH_BUILD_DIR/ui-screenshots/.
Run by tests/ui/run.sh. Prints "N passed, N failed"; exits 1 on any failure.
"""
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import server_test as T  # noqa: E402

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import NoAlertPresentException, TimeoutException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

SHOTS = os.path.join(os.environ.get("BERTH_BUILD_DIR") or os.path.join(T.SRC, "build"),
                     "ui-screenshots" + ("-postgresql" if os.environ.get("BERTH_STORE") else ""))
INIT_STACK = "ui%s-init" % T.RUN_ID


class Proxy:
    """127.0.0.1:<port> -> the server; cut() drops every open connection (as a flaky network would)."""

    def __init__(self, upstream_port):
        self.up = upstream_port
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(64)
        self.port = self.ls.getsockname()[1]
        self.conns = []
        self.lock = threading.Lock()
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                c, _ = self.ls.accept()
                u = socket.create_connection(("127.0.0.1", self.up))
            except OSError:
                return
            with self.lock:
                self.conns += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self.pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def pipe(a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class UI:
    def __init__(self, base):
        o = webdriver.ChromeOptions()
        o.binary_location = os.environ.get("BERTH_CHROME", "/usr/bin/chromium")
        for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900",
                  "--disable-gpu", "--no-first-run"):
            o.add_argument(a)
        self.d = webdriver.Chrome(service=Service(os.environ.get("BERTH_CHROMEDRIVER", "/usr/bin/chromedriver")),
                                  options=o)
        self.base = base

    def go(self, frag):
        self.d.get(self.base + "/#" + frag)

    def js(self, script, *args):
        return self.d.execute_script(script, *args)

    def wait(self, cond, timeout=30, what=""):
        try:
            WebDriverWait(self.d, timeout, poll_frequency=0.05).until(lambda d: cond())
            return True
        except TimeoutException:
            print("  (timed out waiting for %s)" % (what or "a condition"))
            return False

    def css(self, sel):
        return self.d.find_elements(By.CSS_SELECTOR, sel)

    def button(self, text):
        return self.js("return [...document.querySelectorAll('button')].find(b => b.textContent.trim() === arguments[0]"
                       " && b.offsetParent !== null) || null", text)

    def by_label(self, text):
        return self.js("const l = [...document.querySelectorAll('label')].find(l => l.textContent.trim() === arguments[0]);"
                       " return l ? document.getElementById(l.htmlFor) : null", text)

    def text(self, sel):
        return self.js("const e = document.querySelector(arguments[0]); return e ? e.textContent : '';", sel)

    def log_text(self):
        return self.js("return Array.from(document.querySelectorAll('pre.log')).map(p => p.textContent).join('');")

    def state(self):
        return self.text("main h1 .badge")

    def shot(self, name):
        """The whole page (up to 2400 px high), as test artifact."""
        os.makedirs(SHOTS, exist_ok=True)
        height = min(2400, max(900, self.js("return document.documentElement.scrollHeight")))
        self.d.set_window_size(1280, height)
        time.sleep(0.2)
        self.d.save_screenshot(os.path.join(SHOTS, name + ".png"))
        self.d.set_window_size(1280, 900)

    def no_alert(self):
        try:
            self.d.switch_to.alert
            return False
        except NoAlertPresentException:
            return True

    def sign_in(self, key):
        self.go("/signin")
        self.wait(lambda: self.css("input[type=password]"), what="the sign-in form")
        self.css("input[type=password]")[0].send_keys(key)
        self.button("Sign in").click()
        return self.wait(lambda: self.css("#nav .who"), what="the signed-in page")

    def sign_out(self):
        self.button("Sign out").click()
        self.wait(lambda: self.css("input[type=password]"), what="the sign-in form")

    def task_page_of_run(self):
        """After the Run task form: the new task's id (the page it went to)."""
        self.wait(lambda: "#/tasks/" in self.d.current_url, what="the new task's page")
        return self.d.current_url.split("#/tasks/")[1]

    def wait_state(self, states, timeout=90):
        return self.wait(lambda: self.state().split()[-1:] and self.state().split()[-1] in states, timeout,
                         "state %s" % (states,))

    def run_task(self, stack, command, init=True):
        self.go("/stacks/" + stack)
        self.wait(lambda: self.css("textarea[name=command]"), what="the run form")
        self.css("textarea[name=command]")[0].send_keys(command)
        box = self.by_label("Run initialization")
        if box.is_selected() != init:
            box.click()
        self.button("Run task").click()
        return self.task_page_of_run()


def api(method, path, key, body=None):
    st, j, payload, _ = T.req(method, path, key, body, transport="tcp", validate=False)
    return st, j, payload


# ---------------------------------------------------------------------------------------------------------------------

def test_sign_in(ui, keys):
    ui.go("/stacks")
    T.check("signed out, the UI asks for a key", ui.wait(lambda: ui.css("input[type=password]"), what="sign-in"))
    lab = ui.by_label("API key")
    T.check("the key field has a label", lab is not None and lab.get_attribute("type") == "password")
    ui.shot("01-sign-in")
    lab.send_keys(keys["w1"][:-2] + "xx")
    ui.button("Sign in").click()
    T.check("a wrong key is refused with a message", ui.wait(lambda: "invalid" in ui.text("form .form-msg"),
                                                          what="the refusal"), ui.text("form .form-msg"))
    T.check("signing in with a key shows the stacks", ui.sign_in(keys["w1"]) and "w1 (writer)" in ui.text("#nav .who"))
    ui.wait(lambda: ui.css("main table tbody tr"), what="the stacks table")
    store = ui.js("return JSON.stringify([Object.keys(localStorage), Object.keys(sessionStorage), document.cookie]);")
    T.check("the key is in no page storage and the session cookie is HttpOnly", store == '[[],[],""]'
            and keys["w1"] not in ui.d.page_source, store)
    ck = {c["name"]: c for c in ui.d.get_cookies()}.get("berth_session", {})
    T.check("the cookie: HttpOnly, SameSite=Strict, expiring", ck.get("httpOnly") and ck.get("sameSite") == "Strict"
            and ck.get("expiry"), ck)
    ui.shot("02-stacks")


def test_init_toggle(ui, keys):
    tid = ui.run_task(INIT_STACK, "echo PERFORM-MARKER-$((1+1))", init=False)
    ui.wait_state(["FINISHED", "FAILED"])
    ui.wait(lambda: "PERFORM-MARKER-2" in ui.log_text(), 10, "the command's output")
    text = ui.log_text()
    T.check("init toggle off: the command ran and init did not", "PERFORM-MARKER-2" in text
            and "INIT-MARKER-42" not in text and ui.state().endswith("FINISHED"), (ui.state(), text[-400:]))
    st, j, _ = api("GET", "/v1/tasks/" + tid, keys["rd"])
    T.check("  ...the task was submitted with skip_init", j["skip_init"] is True, j.get("skip_init"))
    T.check("  ...and the page says initialization was skipped", "skipped" in ui.text("dl.facts"))
    ui.shot("04-task-finished")
    tid2 = ui.run_task(INIT_STACK, "echo PERFORM-MARKER-$((1+1))", init=True)
    ui.wait_state(["FINISHED", "FAILED"])
    ui.wait(lambda: "PERFORM-MARKER-2" in ui.log_text(), 10, "the command's output")
    text = ui.log_text()
    T.check("init toggle on (the default): init ran first, in its own section", "INIT-MARKER-42" in text
            and text.index("INIT-MARKER-42") < text.index("PERFORM-MARKER-2")
            and ui.js("return [...document.querySelectorAll('section.phase h3')].map(h => h.textContent).join(',')")
            .find("Initialization") >= 0, text[-400:])
    ui.go("/stacks/" + INIT_STACK)
    ui.wait(lambda: len(ui.css("main .tasks tbody tr")) >= 2, what="the tasks table")
    rows = ui.js("return [...document.querySelectorAll('main .tasks tbody tr')].map(r => r.textContent)")
    T.check("the tasks screen lists both, newest first, with state and exit code",
            tid2[:12] in rows[0] and tid[:12] in rows[1] and "FINISHED" in rows[0] and "key:w1" in rows[0], rows[:2])
    ui.shot("03-stack-tasks")


def test_live_log(ui, keys):
    # ticks carry the time they were printed (ms); the page records when each one appeared in the DOM
    ui.go("/stacks/" + T.S(2))
    ui.wait(lambda: ui.css("textarea[name=command]"), what="the run form")
    ui.js("""window.__seen = {};
      new MutationObserver(() => {
        const box = document.querySelector('.logbox');
        if (!box) return;
        for (const m of box.textContent.matchAll(/tick (\\d+) (\\d+)/g))
          if (!(m[1] in window.__seen)) window.__seen[m[1]] = [Number(m[2]), Date.now()];
      }).observe(document.body, {subtree: true, childList: true, characterData: true});""")
    ui.css("textarea[name=command]")[0].send_keys(
        "seq 1 300; for i in $(seq 1 25); do echo \"tick $i $(date +%s%3N)\"; sleep 0.2; done")
    ui.by_label("Run initialization").click()
    ui.button("Run task").click()
    ui.task_page_of_run()
    counts = []
    ui.wait(lambda: ui.js("return Object.keys(window.__seen || {}).length") >= 3, 60, "the first ticks")
    for _ in range(3):
        counts.append((ui.js("return Object.keys(window.__seen).length"), ui.state()))
        time.sleep(0.8)
    T.check("a running task's log grows on the page while it runs", counts[0][0] < counts[1][0] < counts[2][0]
            and all("PERFORMING" in s for _, s in counts), counts)
    # follow: at the bottom while following; scrolling up stops it, new lines do not pull the view down
    at_end = "const b = document.querySelector('.logbox'); return b.scrollTop + b.clientHeight >= b.scrollHeight - 8;"
    T.check("following: the log view stays at its end", ui.js(at_end))
    ui.js("document.querySelector('.logbox').scrollTop = 0;")
    ui.wait(lambda: not ui.by_label("Follow").is_selected(), 5, "follow to turn off")
    n0 = ui.js("return Object.keys(window.__seen).length")
    time.sleep(1)
    T.check("scrolling up turns follow off and new lines leave the view alone",
            not ui.by_label("Follow").is_selected() and ui.js("return document.querySelector('.logbox').scrollTop") == 0
            and ui.js("return Object.keys(window.__seen).length") > n0)
    ui.by_label("Follow").click()
    time.sleep(0.3)
    T.check("ticking Follow again jumps to the end", ui.js(at_end))
    ui.shot("05-task-live")
    ui.wait_state(["FINISHED", "FAILED"])
    seen = ui.js("return window.__seen")
    lat = sorted(v[1] - v[0] for v in seen.values())
    T.check("every tick reached the page, each within 500 ms of being printed (max %d ms, median %d ms)"
            % (lat[-1], lat[len(lat) // 2]), len(seen) == 25 and lat[-1] <= 500, lat)
    # an ended task: Retry runs it again as a new task, whose page names the one it retries
    old = ui.js("return location.hash").rsplit("/", 1)[-1]
    ui.wait(lambda: ui.button("Retry"), 10, "the Retry button")
    ui.button("Retry").click()
    ui.wait(lambda: ui.js("return location.hash").rsplit("/", 1)[-1] not in ("", old), 15, "the new task's page")
    ui.wait(lambda: "Retry of" in ui.text("dl.facts"), 15, "the retried task's facts")
    link = ui.css("dl.facts a[href^='#/tasks/']")
    T.check("Retry on an ended task opens the new task, which links the task it retries",
            link and link[-1].get_attribute("href").endswith(old), ui.text("dl.facts"))
    ui.wait_state(["FINISHED", "FAILED"])


def test_cancel_queued(ui, keys):
    st, j1, _ = api("POST", "/v1/stacks/%s/tasks" % T.S(3), keys["w1"], {"command": "sleep 8", "skip_init": True})
    st, j2, _ = api("POST", "/v1/stacks/%s/tasks" % T.S(3), keys["w1"], {"command": "echo never", "skip_init": True})
    ui.go("/tasks/" + j2["id"])
    ui.wait(lambda: ui.state().endswith("QUEUED"), 10, "QUEUED")
    ui.wait(lambda: "Waiting for" in ui.text("dl.facts"), 10, "the blocker")
    link = ui.css("dl.facts a[href^='#/tasks/']")
    T.check("a queued task shows the task it waits for, linked",
            link and link[0].get_attribute("href").endswith(j1["id"]), ui.text("dl.facts"))
    ui.shot("06-task-queued")
    ui.button("Cancel").click()
    ui.wait_state(["CANCELED"], 15)
    st, j, _ = api("GET", "/v1/tasks/" + j2["id"], keys["rd"])
    st, jb, _ = api("GET", "/v1/tasks/" + j1["id"], keys["rd"])
    T.check("Cancel on a queued task behind a running one: CANCELED, the running one goes on",
            j["state"] == "CANCELED" and ui.state().endswith("CANCELED") and jb["state"] not in ("CANCELED", "STOPPED"),
            (j["state"], jb["state"]))
    T.check("  ...the timeline shows the cancel with its actor", "CANCELED" in ui.text("ol.timeline")
            and "w1" in ui.text("ol.timeline"), ui.text("ol.timeline"))
    # a PERFORMING task: the button explains why it cannot be stopped
    ui.go("/tasks/" + j1["id"])
    ui.wait(lambda: ui.state().endswith("PERFORMING"), 30, "PERFORMING")
    ui.wait(lambda: ui.css("#why-no-stop"), 10, "the explanation")
    stop = ui.button("Stop")
    T.check("a PERFORMING task's Stop is disabled and says why", stop is not None and not stop.is_enabled()
            and "cannot be stopped" in ui.text("#why-no-stop"))


def test_lock(ui, keys):
    ui.go("/stacks/" + T.S(4))
    ui.wait(lambda: ui.by_label("Lock note"), what="the lock form")
    ui.by_label("Lock note").send_keys("db migration <b>not bold</b>")
    ui.button("Lock").click()
    ui.wait(lambda: ui.button("Unlock"), 10, "the unlock button")
    st, j, _ = api("GET", "/v1/stacks/" + T.S(4), keys["rd"])
    T.check("Lock with a note: the stack is locked by the signed-in key", j["lock"] and j["lock"]["owner"] == "w1"
            and j["lock"]["note"] == "db migration <b>not bold</b>", j["lock"])
    T.check("  ...the page shows owner and note, as text", "db migration <b>not bold</b>" in ui.text("main")
            and not ui.css("main b"))
    ui.shot("07-stack-locked")
    ui.go("/stacks")
    ui.wait(lambda: "locked" in ui.text("main table"), 10, "the stacks list")
    T.check("  ...and the stacks list says so", "by w1" in ui.text("main table"))
    ui.go("/stacks/" + T.S(4))
    ui.wait(lambda: ui.button("Unlock"), 10, "the unlock button")
    ui.button("Unlock").click()
    ui.wait(lambda: ui.by_label("Lock note"), 10, "the lock form")
    st, j, _ = api("GET", "/v1/stacks/" + T.S(4), keys["rd"])
    T.check("Unlock: the lock is gone", j["lock"] is None, j["lock"])


XSS = ("printf '%s\\n' '<script>window.__xss=1;alert(1)</script>' '<img src=x onerror=\"window.__xss=2;alert(2)\">'; "
       "printf '\\033[2J\\033[H\\033]0;evil-title\\007\\033]8;;http://evil.example/\\007click-me\\033]8;;\\007\\n'; "
       "printf '\\033[31mred\\033[0m \\033[1;32mbold-green\\033[0m\\n'; "
       "head -c 1048576 /dev/zero | tr '\\0' A; echo; echo done-xss >&2")


def test_xss(ui, keys):
    st, j, _ = api("POST", "/v1/stacks/%s/tasks" % T.S(1), keys["w1"], {"command": XSS, "skip_init": True})
    ui.go("/tasks/" + j["id"])
    ui.wait(lambda: "ended" in ui.text(".live"), 90, "the end of the XSS task")
    ui.wait(lambda: ui.state().endswith("FINISHED"), 10, "FINISHED")
    text = ui.log_text()
    T.check("no alert fired and no payload ran", ui.no_alert() and ui.js("return window.__xss === undefined"))
    T.check("no element came from task output or the command (no img, script, a, b in the page's content)",
            not ui.css("main img, main script, main iframe, .logbox a, .logbox b"))
    T.check("<script> and <img onerror> show as text", "<script>window.__xss=1;alert(1)</script>" in text
            and '<img src=x onerror="window.__xss=2;alert(2)">' in text)
    T.check("  ...and so does the command in the page header", "<script>" in ui.text("dl.facts code.cmd"))
    T.check("terminal escapes are dropped (no ESC left, no title change, the hyperlink's text only)",
            "\x1b" not in text and "click-me" in text and "evil.example" not in text
            and ui.d.title != "evil-title", repr(text[:200]))
    T.check("SGR colors become classes", ui.js(
        "return [...document.querySelectorAll('.logbox span.fg1')].some(s => s.textContent === 'red') && "
        "[...document.querySelectorAll('.logbox span.fg2.b')].some(s => s.textContent === 'bold-green')"))
    # stdout only: the runner may let the stderr line through while it still holds the end of the long line
    runs = ui.js("return ([...document.querySelectorAll('.logbox span[data-stream=stdout]')].map(s => s.textContent)"
                 ".join('').match(/A+/g) || []).map(m => m.length)")
    T.check("a 1 MB line renders whole, as text", 1048576 in runs, sorted(runs)[-5:])
    T.check("stderr is marked apart from stdout (class and attribute, not color alone)", ui.js(
        "return [...document.querySelectorAll('.logbox span.stderr')].some(s => s.textContent.includes('done-xss') "
        "&& s.dataset.stream === 'stderr')"))
    ui.by_label("Follow").click() if ui.by_label("Follow").is_selected() else None
    ui.js("const b = document.querySelector('.logbox'); const p = document.querySelector('section.phase[data-phase=performing]');"
          "b.scrollTop = p.offsetTop - b.offsetTop;")
    ui.shot("08-task-xss-inert")


def test_sse_reconnect(ui, keys, proxy):
    st, j, _ = api("POST", "/v1/stacks/%s/tasks" % T.S(2), keys["w1"],
                   {"command": "for i in $(seq 1 60); do echo r-$i; sleep 0.1; done", "skip_init": True})
    ui.go("/tasks/" + j["id"])
    for mark in ("r-10", "r-30"):
        ui.wait(lambda: mark + "\n" in ui.log_text(), 60, mark)
        proxy.cut()  # the live log's connection drops; the browser comes back with Last-Event-ID
        time.sleep(0.3)
    ui.wait(lambda: "ended" in ui.text(".live"), 60, "the end")
    time.sleep(0.5)
    page = ui.log_text()
    st, _, raw = api("GET", "/v1/tasks/%s/logs" % j["id"], keys["rd"])
    lines = [ln for ln in page.split("\n") if ln.startswith("r-")]
    T.check("cut twice, the live log resumed: every line once, none missing (%d lines)" % len(lines),
            lines == ["r-%d" % i for i in range(1, 61)], [ln for ln in lines if lines.count(ln) > 1][:5])
    T.check("  ...and the page holds exactly the task's log", page == raw.decode(), (len(page), len(raw)))


def test_reader(ui, keys):
    st, jr, _ = api("POST", "/v1/stacks/%s/tasks" % T.S(3), keys["w1"], {"command": "sleep 3", "skip_init": True})
    before = {c["name"]: c["value"] for c in ui.d.get_cookies()}.get("berth_session")
    ui.sign_out()
    T.check("signing out ends the session (its old cookie is refused)", before
            and api_with_cookie(ui, "GET", "/v1/session", before)[0] == 401)
    ui.sign_in(keys["rd"])
    T.check("a reader sees no Audit or Admin links", not [a for a in ui.css("#nav a") if a.text in ("Audit", "Admin")])
    ui.go("/stacks/" + T.S(3))
    ui.wait(lambda: ui.css("main .tasks tbody tr"), what="the tasks table")
    T.check("a reader sees no Run task form and no Lock control", not ui.css("textarea[name=command]")
            and ui.by_label("Lock note") is None and ui.button("Lock") is None and ui.button("Run task") is None)
    ui.shot("09-reader-stack")
    ui.go("/tasks/" + jr["id"])
    ui.wait(lambda: ui.state(), 10, "the task page")
    T.check("a reader sees no Cancel or Stop", ui.button("Cancel") is None and ui.button("Stop") is None)
    # forged requests with the reader's session: without the CSRF token, and with it (the role still refuses)
    forged = ui.d.execute_async_script("""const done = arguments[arguments.length - 1];
      const post = (h) => fetch(arguments[0], {method: 'POST', credentials: 'same-origin',
        headers: Object.assign({'Content-Type': 'application/json'}, h), body: '{"command": "echo forged"}'})
        .then(r => r.status);
      fetch('/v1/session').then(r => r.json()).then(s => Promise.all([post({}), post({'X-CSRF-Token': s.csrf_token})]))
        .then(done, e => done(String(e)));""", "/v1/stacks/%s/tasks" % T.S(3))
    T.check("a forged POST with the reader's cookie is refused (403 without CSRF token, 403 with it)",
            forged == [403, 403], forged)
    st, body = api_with_cookie(ui, "POST", "/v1/tasks/%s/cancel" % jr["id"])
    T.check("the reader's cookie replayed outside the browser cannot cancel (403)", st == 403, (st, body))
    st, j, _ = api("GET", "/v1/tasks?stack=%s&limit=5" % T.S(3), keys["rd"])
    T.check("  ...and nothing was submitted", not [t for t in j["tasks"] if "forged" in t["command"]])


def api_with_cookie(ui, method, path, value=None):
    value = value or {c["name"]: c["value"] for c in ui.d.get_cookies()}.get("berth_session")
    if value is None:
        return 0, b""
    c = http.client.HTTPConnection("127.0.0.1", T.SRV.port, timeout=30)
    c.request(method, path, headers={"Cookie": "berth_session=" + value})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


def test_admin(ui, keys):
    ui.sign_out()
    ui.sign_in(keys["adm"])
    ui.go("/audit")
    ui.wait(lambda: ui.css("main table tbody tr"), 20, "the audit records")
    T.check("the audit screen lists records (the sign-ins among them)", "session.create" in ui.text("main table"),
            ui.text("main")[:300])
    ui.button("Verify the hash chain").click()
    ui.wait(lambda: "Intact" in ui.text("main"), 20, "the verdict")
    T.check("audit verify from the page: intact", "Intact" in ui.text("main"))
    ui.shot("10-audit")
    ui.go("/admin")
    ui.wait(lambda: ui.by_label("Check an image"), 20, "the admin page")
    ui.by_label("Check an image").send_keys("docker.io/library/alpine:3")
    ui.button("Check").click()
    ui.wait(lambda: "allowed" in ui.text("main").lower(), 10, "the check result")
    T.check("the admin page checks an image against the allowlist", "docker.io/library/alpine:3" in ui.text("main"))
    ui.by_label("Name").send_keys("ui-made")
    ui.button("Create key").click()
    ui.wait(lambda: ui.css("code.secret"), 20, "the new key")
    T.check("creating a key shows its secret once", ui.text("code.secret").startswith("berth_"))
    ui.js("document.querySelector('code.secret').textContent = 'berth_…(hidden in the screenshot)';")
    ui.shot("11-admin")
    # dark theme follows the system setting
    ui.d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    ui.go("/stacks/" + INIT_STACK)
    ui.wait(lambda: ui.css("main .tasks tbody tr"), 20, "the tasks table")
    bg = ui.js("return getComputedStyle(document.body).backgroundColor")
    T.check("a dark system setting gives the dark theme", bg == "rgb(13, 17, 23)", bg)
    ui.shot("12-stack-tasks-dark")
    ui.d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "light"}]})


def test_weight_and_keyboard(ui, keys):
    # a fresh load of the tasks screen, nothing cached
    ui.d.execute_cdp_cmd("Network.enable", {})
    ui.d.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
    ui.d.get("about:blank")
    ui.go("/stacks/" + INIT_STACK)
    ui.wait(lambda: ui.css("main .tasks tbody tr"), 20, "the tasks table")
    time.sleep(0.5)
    total = ui.js("return performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))"
                  ".reduce((n, e) => n + e.transferSize, 0)")
    T.check("the tasks screen loads in under 150 KB transferred (%d bytes, API answers included)" % total,
            0 < total < 150 * 1024, total)
    ui.d.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": False})
    unlabeled = ui.js("""return [...document.querySelectorAll('input, select, textarea')].filter(e =>
        !(e.id && document.querySelector('label[for="' + e.id + '"]')) && !e.getAttribute('aria-label')).length""")
    T.check("every control on the tasks screen has a label", unlabeled == 0, unlabeled)
    # keyboard: Tab reaches the command box and Run task; Enter on a focused link navigates
    focusable = ui.js("""return [...document.querySelectorAll('a[href], button, input, select, textarea')]
          .filter(e => !e.disabled && e.tabIndex >= 0).map(e => e.textContent.trim() || e.name || e.id).slice(0, 40);""")
    T.check("links, buttons and fields are in the tab order", "Run task" in focusable and "command" in focusable,
            focusable)
    first = ui.css("main .tasks tbody tr a")[0]
    tid = first.get_attribute("href").split("#/tasks/")[1]
    ui.js("arguments[0].focus()", first)
    ActionChains(ui.d).send_keys(Keys.ENTER).perform()
    T.check("Enter on a focused task link opens the task", ui.wait(lambda: ui.d.current_url.endswith(tid), 10))
    ui.go("/stacks")
    ui.wait(lambda: ui.css("main table"), 10)
    T.check("after navigating, focus is on the screen's heading",
            ui.js("return document.activeElement.tagName") == "H1")
    ActionChains(ui.d).send_keys(Keys.TAB).perform()
    T.check("Tab from there reaches the screen's first link",
            ui.js("return document.activeElement.tagName + ' ' + !!document.activeElement.closest('main')") == "A true")
    T.check("a skip link comes first in the page",
            ui.js("return document.querySelector('a[href], button, input').className") == "skip")


def test_hosts(ui, keys):
    """The fleet's hosts (a PostgreSQL store): the nav shows them, each host its state, slots and latest tasks; an
    admin drains and undrains from the page. On SQLite (one host) the nav has no Hosts link."""
    if not os.environ.get("BERTH_STORE"):
        T.check("on a SQLite store the nav has no Hosts link", not [a for a in ui.css("#nav a") if a.text == "Hosts"])
        return
    st, j, _ = api("GET", "/v1/hosts", keys["rd"])
    name = j["hosts"][0]["name"] if st == 200 and j["hosts"] else "?"
    ui.go("/stacks")
    ui.wait(lambda: [a for a in ui.css("#nav a") if a.text == "Hosts"], 10, "the Hosts link")
    [a for a in ui.css("#nav a") if a.text == "Hosts"][0].click()
    ui.wait(lambda: name in ui.text("main table"), 20, "the hosts table")
    row = ui.js("return [...document.querySelectorAll('main tbody tr')].map(r => r.textContent)"
                ".find(t => t.startsWith(arguments[0])) || ''", name)
    T.check("the hosts screen lists the server's host, alive, with its slots (%s)" % row,
            "alive" in row and "default" in row and " / " in row, row)
    ui.shot("13-hosts")
    ui.css("main tbody tr a")[0].click()
    ui.wait(lambda: ui.css("main table tbody tr a"), 20, "the host's tasks")
    T.check("a host's page lists the tasks it ran, linked",
            ui.js("return document.querySelectorAll('main table tbody tr a[href^=\"#/tasks/\"]').length") > 0)
    ui.button("Drain").click()
    ui.wait(lambda: "draining" in ui.text("main dl"), 10, "draining")
    st, j, _ = api("GET", "/v1/hosts/" + name, keys["rd"])
    T.check("Drain on the host's page drains it (the API says %s)" % j.get("state"), j.get("state") == "draining", j)
    ui.shot("14-host-draining")
    ui.button("Undrain").click()
    ui.wait(lambda: "alive" in ui.text("main dl"), 10, "alive again")
    st, j, _ = api("GET", "/v1/hosts/" + name, keys["rd"])
    T.check("  ...and Undrain makes it claim again", j.get("state") == "alive", j)


def main():
    keys = T.setup()
    rc, _, err = T.berth("stack", "create", INIT_STACK, "--image", "berth/runner:latest",
                         "--init", "echo INIT-MARKER-$((40+2))")
    assert rc == 0, err
    T.SRV = T.Server()
    proxy = Proxy(T.SRV.port)
    ui = None
    try:
        ui = UI("http://127.0.0.1:%d" % proxy.port)
        for t in (test_sign_in, test_init_toggle, test_live_log, test_cancel_queued, test_lock, test_xss):
            t(ui, keys)
        test_sse_reconnect(ui, keys, proxy)
        test_weight_and_keyboard(ui, keys)
        test_reader(ui, keys)
        test_admin(ui, keys)
        test_hosts(ui, keys)
        errors = [e for e in ui.d.get_log("browser") if e["level"] == "SEVERE" and "status of 4" not in e["message"]
                  and "net::ERR" not in e["message"]]
        T.check("no script errors in the browser console", not errors, errors[:3])
    finally:
        if ui:
            ui.d.quit()
        T.SRV.proc.terminate()
        try:
            T.SRV.proc.wait(timeout=70)
        except subprocess.TimeoutExpired:
            T.SRV.proc.kill()
        for n in range(1, 5):
            ids = subprocess.run(["docker", "ps", "-aq", "--filter", "label=berth.stack=" + T.S(n)],
                                 capture_output=True).stdout.decode().split()
            if ids:
                subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)
        T.check_sanitizer_reports()
        subprocess.run(["rm", "-rf", T.TMP])
    print("%d passed, %d failed; screenshots in %s" % (T.passes, T.fails, SHOTS))
    sys.exit(1 if T.fails else 0)


if __name__ == "__main__":
    main()
