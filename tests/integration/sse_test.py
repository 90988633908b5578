"""GET /v1/tasks/{id}/events (Server-Sent Events) against a real `berth serve` and real tasks.

Reuses server_test.py's server, store and key set-up. Checks that the events carry every log byte exactly once, in
order, with the right stream and phase; that a client reconnecting with Last-Event-ID (or ?offset=), at a record
boundary or inside a long record, gets the rest with nothing missing and nothing twice; state changes; the end.
Run by tests/integration/test_sse.sh. Prints "N passed, N failed"; exits 1 on any failure.
"""
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import server_test as T  # noqa: E402

# a task whose output has stdout and stderr, multi-byte characters, an escape sequence, and one 100 KB line that
# the server sends as several events (its pieces are cut between characters, never inside one)
LONG = "é" * 50000
COMMAND = ("for i in $(seq 1 40); do echo \"out-$i ü\"; echo \"err-$i\" >&2; sleep 0.05; done; "
           "printf '\\033[31mred\\033[0m\\n'; printf '%s\\n' '" + LONG + "'; sleep 1; echo last")


class Events:
    """One EventSource-like connection: events as dicts (id, event, data), read as they come."""

    def __init__(self, key, tid, last_id=None, query=""):
        self.c = T.SRV.conn("tcp", timeout=60)
        h = {"Authorization": "Bearer " + key, "Accept": "text/event-stream"}
        if last_id is not None:
            h["Last-Event-ID"] = str(last_id)
        self.c.request("GET", "/v1/tasks/%s/events%s" % (tid, query), headers=h)
        self.r = self.c.getresponse()

    def __iter__(self):
        ev = {}
        while True:
            line = self.r.readline()
            if not line:
                return
            line = line.decode().rstrip("\n")
            if line == "":
                if "event" in ev or "data" in ev:
                    yield ev
                ev = {}
            elif line.startswith(":"):
                continue
            else:
                k, _, v = line.partition(":")
                ev[k] = v[1:] if v.startswith(" ") else v

    def close(self):
        self.c.close()


def texts(evs):
    return "".join(json.loads(e["data"])["text"] for e in evs if e.get("event") == "log")


def raw_log(key, tid):
    st, _, payload, _ = T.req("GET", "/v1/tasks/%s/logs" % tid, key, validate=False)
    return payload.decode()


def test_sse(keys):
    rd = keys["rd"]
    st, j, _, _ = T.req("POST", "/v1/stacks/%s/tasks" % T.S(1), keys["w1"], {"command": COMMAND})
    if not T.check("a task to follow is submitted", st == 201, j):
        return
    tid = j["id"]

    # follower A reads the whole stream; follower B is cut after a few events and reconnects with Last-Event-ID
    full = []
    a = Events(rd, tid)
    T.check("the events endpoint answers 200 text/event-stream",
            a.r.status == 200 and a.r.getheader("Content-Type", "").startswith("text/event-stream"),
            (a.r.status, a.r.getheader("Content-Type")))
    ta = threading.Thread(target=lambda: full.extend(a))
    ta.start()

    part1 = []
    b = Events(rd, tid)
    for e in b:
        part1.append(e)
        if sum(1 for x in part1 if x.get("event") == "log") >= 25:
            break
    b.close()
    last = [e["id"] for e in part1 if "id" in e][-1]
    part2 = list(Events(rd, tid, last_id=last))
    ta.join(120)
    a.close()

    raw = raw_log(rd, tid)
    logs = [e for e in full if e.get("event") == "log"]
    T.check("the events carry the whole log, in order (%d log events)" % len(logs), texts(full) == raw,
            (len(texts(full)), len(raw)))
    ids = [int(e["id"]) for e in full if "id" in e]
    T.check("ids never go back", ids == sorted(ids) and len(ids) > 0)
    # the record stream's length, as the server stores it (a file on SQLite, chunks on PostgreSQL)
    st, _, records, _ = T.req("GET", "/v1/tasks/%s/logs?format=records" % tid, keys["w1"], validate=False)
    size = len(records) if st == 200 else -1
    T.check("the last id is the length of the stored record stream", ids and ids[-1] == size, (ids[-1:], size))
    streams = {(json.loads(e["data"])["stream"], json.loads(e["data"])["phase"]) for e in logs}
    T.check("stdout, stderr and notes are told apart, with the phase",
            {("stdout", "performing"), ("stderr", "performing")} <= streams and any(s == "note" for s, _ in streams),
            streams)
    T.check("an escape sequence arrives as text (ESC kept for the renderer)", "\x1b[31mred\x1b[0m" in texts(full))
    pieces = [e for e in logs if "é" in json.loads(e["data"])["text"]]
    T.check("a 100 KB line goes out as several events, each valid UTF-8", len(pieces) >= 5
            and "".join(json.loads(e["data"])["text"] for e in pieces).count("é") == 50000, len(pieces))
    states = [json.loads(e["data"]) for e in full if e.get("event") == "state"]
    T.check("state events: the whole history, each transition once, by index",
            [s["index"] for s in states] == list(range(len(states)))
            and [s["state"] for s in states][:1] == ["QUEUED"] and states[-1]["state"] == "FINISHED"
            and "PERFORMING" in [s["state"] for s in states], [s["state"] for s in states])
    T.check("the stream ends with `end` (state and exit code)", full and full[-1].get("event") == "end"
            and json.loads(full[-1]["data"]) == {"state": "FINISHED", "exit_code": 0, "reason": None}, full[-1:])

    # the reconnect: no byte missing, none twice
    joined = texts(part1) + texts(part2)
    T.check("reconnecting with Last-Event-ID: nothing missing, nothing twice", joined == raw,
            (len(joined), len(raw), last))
    T.check("  ...and the new stream starts with the history again, then the log after the id",
            part2 and part2[0].get("event") == "state" and part2[-1].get("event") == "end")

    # resuming inside the long record (an id between two of its pieces), with ?offset=
    mid = pieces[len(pieces) // 2]
    before = texts(full[:full.index(mid) + 1])
    rest = texts(list(Events(rd, tid, query="?offset=" + mid["id"])))
    T.check("resuming inside a long record (?offset=) sends the rest of it", before + rest == raw,
            (len(before), len(rest), len(raw)))
    end_only = list(Events(rd, tid, last_id=size))
    T.check("resuming at the end sends the history and `end` only",
            not texts(end_only) and end_only[-1].get("event") == "end")

    for bad in ("1", "3", str(size + 1), "-1", "x"):
        e = Events(rd, tid, last_id=bad)
        body = e.r.read()
        T.check("Last-Event-ID %s (not an id of this log) is refused with 400" % bad, e.r.status == 400, (e.r.status, body))
        e.close()

    # roles and scope as the logs endpoint
    st, _, _, _ = T.req("GET", "/v1/tasks/%s/events" % tid, None)
    T.check("no key: 401", st == 401, st)
    st2, _, _, _ = T.req("GET", "/v1/tasks/zzzzzzzzzzzz/events", rd)
    T.check("an unknown task: 404", st2 == 404, st2)


def test_cut_characters(keys):
    """Characters cut between two records (the runner writes what each read returned) arrive whole, and resuming at
    any id of the stream gives exactly the rest."""
    cmd = ("printf 'a\\342\\202'; sleep 0.4; printf '\\254b\\n'; "        # € cut after 2 bytes
           "printf 'c\\342'; sleep 0.4; echo err >&2; sleep 0.4; printf 'd\\n'")  # cut, then another stream
    st, j, _, _ = T.req("POST", "/v1/stacks/%s/tasks" % T.S(3), keys["w1"], {"command": cmd, "skip_init": True})
    tid = j["id"]
    full = list(Events(keys["rd"], tid))
    text = texts(full)
    T.check("a character cut between two records arrives whole", "a\u20acb\n" in text, repr(text[-80:]))
    T.check("a cut followed by another stream's bytes: U+FFFD, then the rest in order",
            "c\ufffderr\nd\n" in text, repr(text[-80:]))
    bad = []
    for k, e in enumerate(full):
        if "id" not in e:
            continue
        rest = texts(list(Events(keys["rd"], tid, last_id=e["id"])))
        if texts(full[:k + 1]) + rest != text:
            bad.append(e["id"])
    T.check("resuming at every id of the stream gives exactly the rest", not bad, bad[:5])


def test_live(keys):
    """A running task's events arrive while it runs (new bytes within 500 ms of being written)."""
    st, j, _, _ = T.req("POST", "/v1/stacks/%s/tasks" % T.S(2), keys["w1"],
                        {"command": "for i in $(seq 1 20); do echo tick-$i; sleep 0.2; done", "skip_init": True})
    tid = j["id"]
    seen = {}
    ev = Events(keys["rd"], tid)
    for e in ev:
        if e.get("event") == "log":
            for word in json.loads(e["data"])["text"].split():
                if word.startswith("tick-"):
                    seen[word] = time.time()
    ev.close()
    times = [seen.get("tick-%d" % i) for i in range(1, 21)]
    T.check("every line of a running task arrives", all(times), [k for k in seen][:3])
    if all(times):
        gaps = [b - a for a, b in zip(times, times[1:])]
        T.check("lines arrive as they are printed (spread like the task's own 200 ms ticks, none bunched)",
                max(gaps) < 0.2 + 0.5 and sum(gaps) > 3, ["%.2f" % g for g in gaps])

    # a stack-scoped key may not follow another stack's task
    st, _, _, _ = T.req("GET", "/v1/tasks/%s/events" % tid, keys["wa"])
    T.check("a key scoped to another stack is refused (403)", st == 403, st)


if __name__ == "__main__":
    T.run_suite([test_sse, test_cut_characters, test_live])
