#!/usr/bin/env bash
# Signed webhooks through a real server and real receivers on 127.0.0.1: every state of a task arrives once (after
# two 500s), signed, in state_version order; an event written while no server runs (the server SIGKILLed) is
# delivered when one runs again; a 404 is not retried; a receiver that hangs delays no task.
. "$(dirname "$0")/lib.sh"
RECV=$(cd "$(dirname "$0")" && pwd)/hook_receiver.py
A=$(stack_name wha)
N=$(stack_name whn)
H=$(stack_name whh)
for s in $A $N $H; do "$BERTH" stack create "$s" --image berth/busybox:latest >/dev/null; done
export HOOK_SECRET="hook-secret-$$-Zq8xK2"
export BERTH_WEBHOOK_BACKOFF_MS=200 # the testing knob: retries after 0.2 s, 0.4 s, ... instead of 15 s, 30 s, ...
PIDS=""
trap 'for p in $PIDS; do kill $p 2>/dev/null; wait $p 2>/dev/null; done; t_cleanup' EXIT
t_free_port PORT
U=http://127.0.0.1:$PORT
serve() {
  "$BERTH" serve --listen "tcp:127.0.0.1:$PORT" >>"$T_TMP/serve.log" 2>&1 &
  SRV=$!
  PIDS="$PIDS $SRV"
  for _ in $(seq 1 50); do curl -s "$U/" >/dev/null 2>&1 && break; sleep 0.1; done
}
receiver() { # receiver NAME MODE: starts one; its port in RPORT
  python3 "$RECV" "$T_TMP/$1.port" "$T_TMP/$1.log" "$2" >/dev/null 2>>"$T_TMP/recv.err" &
  PIDS="$PIDS $!"
  for _ in $(seq 1 50); do [ -s "$T_TMP/$1.port" ] && break; sleep 0.1; done
  RPORT=$(cat "$T_TMP/$1.port")
}
admin=$("$BERTH" key create wh-admin --role admin 2>/dev/null | tail -n 1)
writer=$("$BERTH" key create wh-writer --role writer 2>/dev/null | tail -n 1)
as() { local k=$1; shift; BERTH_SERVER=$U BERTH_API_KEY=$k "$BERTH" "$@" </dev/null; }
# states LOG TASK [by-delivery]: the states of the task answered 200, in state_version order; a state delivered
# twice shows *2. With by-delivery, a resend under the same X-Berth-Delivery id counts once: delivery is at least
# once, and a server killed between a receiver's 200 and its own record of it sends that delivery again.
states() {
  python3 - "$1" "$2" "${3:-}" <<'PY'
import json, os, sys
seen = {}
for line in open(sys.argv[1]) if os.path.exists(sys.argv[1]) else []:
    r = json.loads(line)
    t = (r["body"] or {}).get("task") or {}
    if t.get("id") == sys.argv[2] and r["status"] == 200:
        v = seen.setdefault(t["state_version"], [t["state"], set(), 0])
        v[1].add(r["delivery"])
        v[2] += 1
n = lambda v: len(v[1]) if sys.argv[3] else v[2]
print(" ".join(v[0] + ("*%d" % n(v) if n(v) > 1 else "") for _, v in sorted(seen.items())))
PY
}
history() { "$BERTH" task show "$1" --json | python3 -c 'import json,sys; print(" ".join(h["state"] for h in json.load(sys.stdin)["history"]))'; }
wait_states() { # wait_states LOG TASK SECONDS [by-delivery]: until every state of the task arrived
  local want
  want=$(history "$2")
  for _ in $(seq 1 $(($3 * 5))); do [ "$(states "$1" "$2" "${4:-}")" = "$want" ] && return 0; sleep 0.2; done
  return 1
}

serve
receiver a fail2
pa=$RPORT
receiver n 404
pn=$RPORT
receiver h hang
ph=$RPORT
check "webhook add through the server (admin)" as "$admin" webhook add hook-a "http://127.0.0.1:$pa/a" \
  --secret-env HOOK_SECRET --event task.state --stack "$A"
as "$admin" webhook add hook-n "http://127.0.0.1:$pn/n" --secret-env HOOK_SECRET --stack "$N" >/dev/null
as "$admin" webhook add hook-h "http://127.0.0.1:$ph/h" --secret-env HOOK_SECRET --stack "$H" >/dev/null
check "a writer key may not add a webhook (admin only)" sh -c \
  "! BERTH_SERVER=$U BERTH_API_KEY=$writer '$BERTH' webhook add w2 http://127.0.0.1:1/ --secret-env HOOK_SECRET"
as "$admin" webhook list --json >"$T_TMP/list.json"
check "webhook list shows the hooks and never a secret" sh -c \
  "grep -q hook-a '$T_TMP/list.json' && ! grep -rqF '$HOOK_SECRET' '$T_TMP/list.json' '$BERTH_HOME/berth.db' '$T_TMP/serve.log'"
check "a webhook URL must be http or https" sh -c "! '$BERTH' webhook add bad file:///etc/passwd --secret-env HOOK_SECRET"

# every state once, after two 500s
id=$(as "$writer" task run "$A" --json -- true 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
wait_states "$T_TMP/a.log" "$id" 30
check "every state of the task arrived once after the receiver's two 500s ($(states "$T_TMP/a.log" "$id"))" \
  test "$(states "$T_TMP/a.log" "$id")" = "$(history "$id")"
check "  ...the first two requests were answered 500 and retried" \
  test "$(python3 -c 'import json,sys; print(sum(json.loads(l)["status"] == 500 for l in open(sys.argv[1])))' "$T_TMP/a.log")" = 2
check "  ...every request was signed with the secret, fresh, with an event and a delivery id" python3 -c '
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
sys.exit(0 if rs and all(r["sig_ok"] and r["fresh"] and r["event"] == "task.state" and r["delivery"] for r in rs) else 1)' "$T_TMP/a.log"
as "$writer" task show "$id" --json >"$T_TMP/rec.json" 2>/dev/null
check "  ...the task in each payload says who triggered it, as its record does" python3 -c '
import json, sys
rec = json.load(open(sys.argv[2]))
rs = [json.loads(l)["body"]["task"] for l in open(sys.argv[1]) if json.loads(l)["status"] == 200]
sys.exit(0 if rs and rec["triggered_by"] and all(t["triggered_by"] == rec["triggered_by"] for t in rs) else 1)' \
  "$T_TMP/a.log" "$T_TMP/rec.json"
check "  ...a retried delivery kept its X-Berth-Delivery id" python3 -c '
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
ids = {r["delivery"] for r in rs if r["status"] == 500}
sys.exit(0 if ids and all(any(r["delivery"] == i and r["status"] == 200 for r in rs) for i in ids) else 1)' "$T_TMP/a.log"
as "$admin" webhook deliveries hook-a --json >"$T_TMP/deliv.json"
check "webhook deliveries --json shows every attempt: the 500s and the 200s, with durations" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))["deliveries"]
codes = [a["status_code"] for x in d for a in x["attempts"]]
sys.exit(0 if codes.count(500) == 2 and 200 in codes and all(x["state"] == "delivered" for x in d) else 1)' "$T_TMP/deliv.json"

# the server SIGKILLed: what happens meanwhile waits in the outbox, and is delivered after a restart (on
# PostgreSQL the test's fleet host, a `berth serve` too, runs the task and delivers: there is no "no server" time)
if [ -z "${BERTH_STORE:-}" ]; then
kill -9 "$SRV"
wait "$SRV" 2>/dev/null
"$BERTH" task run "$A" -- true >/dev/null 2>&1
id2=$(last_task "$A")
sleep 1
check "with no server running, nothing was sent for a new task" test -z "$(states "$T_TMP/a.log" "$id2")"
serve
wait_states "$T_TMP/a.log" "$id2" 30
check "after the restart every state of that task arrived once ($(states "$T_TMP/a.log" "$id2"))" \
  test "$(states "$T_TMP/a.log" "$id2")" = "$(history "$id2")"
check "  ...a task of the local CLI says who triggered it in its payloads: its actor, as its record does" python3 -c '
import json, sys
rs = [json.loads(l)["body"]["task"] for l in open(sys.argv[1])]
rs = [t for t in rs if t["id"] == sys.argv[2]]
sys.exit(0 if rs and all(t["triggered_by"] == t["actor"] and t["actor"] for t in rs) else 1)' "$T_TMP/a.log" "$id2"
else
  echo "skip - no server running while a task runs: on PostgreSQL the test's fleet host is a server too"
fi

# SIGKILLed while it runs a task and sends its events: after the restart every state (the restart's FAILED too)
# arrives, none lost, none twice
id3=$(as "$writer" task run "$A" --detach -- 'sleep 2' 2>/dev/null)
for _ in $(seq 1 50); do [ "$(task_field "$id3" state)" = PERFORMING ] && break; sleep 0.1; done
kill -9 "$SRV"
wait "$SRV" 2>/dev/null
serve
for _ in $(seq 1 100); do
  case $(task_field "$id3" state) in FINISHED | FAILED) break ;; esac
  sleep 0.1
done
wait_states "$T_TMP/a.log" "$id3" 30 by-delivery
check "a server SIGKILLed mid-task: after its restart every state arrived, each under one delivery id ($(states "$T_TMP/a.log" "$id3"))" \
  test "$(states "$T_TMP/a.log" "$id3" by-delivery)" = "$(history "$id3")"

# a 404 is final
as "$writer" task run "$N" -- true >/dev/null 2>&1
idn=$(last_task "$N")
want=$(history "$idn" | wc -w)
for _ in $(seq 1 50); do [ "$(wc -l <"$T_TMP/n.log" 2>/dev/null || echo 0)" -ge "$want" ] && break; sleep 0.2; done
sleep 2 # retries would come after 0.2 s
check "a receiver answering 404 got each delivery once, never retried ($(wc -l <"$T_TMP/n.log") requests, $want states)" \
  test "$(wc -l <"$T_TMP/n.log")" -eq "$want"
as "$admin" webhook deliveries hook-n --json >"$T_TMP/dn.json"
check "  ...and its deliveries are failed, with one attempt each" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))["deliveries"]
sys.exit(0 if d and all(x["state"] == "failed" and len(x["attempts"]) == 1 and x["attempts"][0]["status_code"] == 404 for x in d) else 1)' "$T_TMP/dn.json"

did=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["deliveries"][0]["id"])' "$T_TMP/dn.json")
as "$admin" webhook redeliver "$did" >/dev/null
for _ in $(seq 1 50); do [ "$(grep -c "\"delivery\": \"$did\"" "$T_TMP/n.log")" -ge 2 ] && break; sleep 0.2; done
check "webhook redeliver sends a delivery again, with the same X-Berth-Delivery id" \
  test "$(grep -c "\"delivery\": \"$did\"" "$T_TMP/n.log")" = 2

# audit records as events
receiver u ok
as "$admin" webhook add hook-u "http://127.0.0.1:$RPORT/u" --secret-env HOOK_SECRET --event audit >/dev/null
as "$writer" stack lock "$A" --note audit-me >/dev/null
for _ in $(seq 1 50); do grep -q stack.lock "$T_TMP/u.log" 2>/dev/null && break; sleep 0.2; done
check "--event audit: an audit record (stack.lock) arrives as a signed X-Berth-Event: audit" python3 -c '
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
sys.exit(0 if any(r["event"] == "audit" and r["sig_ok"] and r["body"]["audit"]["action"] == "stack.lock" for r in rs) else 1)' "$T_TMP/u.log"
check "  ...and it hears no task states" sh -c "! grep -q task.state '$T_TMP/u.log'"
as "$writer" stack unlock "$A" >/dev/null

# a receiver that hangs delays no task
t0=$(date +%s%N)
as "$writer" task run "$H" -- true >/dev/null 2>&1
rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
check "with a hanging receiver, a task still runs at once (rc=$rc, ${ms} ms)" test $rc -eq 0 -a $ms -lt 8000
for _ in $(seq 1 50); do [ -s "$T_TMP/h.log" ] && break; sleep 0.2; done
check "  ...while its deliveries wait on the receiver" test -s "$T_TMP/h.log"
check "berth_webhook_attempts_total counts successes in /metrics" sh -c \
  "curl -s -H 'Authorization: Bearer $admin' $U/metrics | grep -q '^berth_webhook_attempts_total{outcome=\"success\"} [1-9]'"
check "the answers of the webhook, schedule and task endpoints match docs/openapi.yaml" python3 - "$U" "$admin" "$A" "$id" \
  "$(cd "$(dirname "$0")" && pwd)" <<'PY'
import json, sys, urllib.request
u, key, stack, task, here = sys.argv[1:6]
sys.path.insert(0, here)
import server_openapi
spec = server_openapi.Spec(here + "/../../docs/openapi.yaml")
calls = [("GET", "/v1/webhooks", None), ("GET", "/v1/webhooks/hook-a/deliveries?limit=5", None),
         ("POST", "/v1/stacks/%s/schedules" % stack, {"name": "nightly", "cron": "0 3 * * *", "tz": "Europe/Berlin",
                                                     "command": "true", "env": {"A": "1"}}),
         ("GET", "/v1/schedules", None), ("GET", "/v1/stacks/%s/schedules" % stack, None),
         ("POST", "/v1/stacks/%s/schedules/nightly/pause" % stack, None),
         ("POST", "/v1/stacks/%s/schedules/nightly/resume" % stack, None),
         ("GET", "/v1/stacks/%s/schedules/nightly" % stack, None),
         ("DELETE", "/v1/stacks/%s/schedules/nightly" % stack, None), ("GET", "/v1/tasks/" + task, None)]
problems = []
for method, path, body in calls:
    req = urllib.request.Request(u + path, method=method, headers={"Authorization": "Bearer " + key},
                                 data=json.dumps(body).encode() if body is not None else None)
    try:
        r = urllib.request.urlopen(req)
        status, ctype, payload = r.status, r.headers.get("Content-Type"), r.read()
    except urllib.error.HTTPError as e:
        status, ctype, payload = e.code, e.headers.get("Content-Type"), e.read()
    problems += spec.check_response(method, path, status, ctype, payload)
    if status >= 300:
        problems.append("%s %s -> %s" % (method, path, status))
print("\n".join(problems), file=sys.stderr)
sys.exit(1 if problems else 0)
PY
metric() { curl -s -H "Authorization: Bearer $admin" "$U/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
ok_before=$(metric 'berth_webhook_attempts_total{outcome="success"}')
failed_before=$(metric 'berth_webhook_attempts_total{outcome="failure"}')
check "removing a webhook (audited)" sh -c "as() { :; }; BERTH_SERVER=$U BERTH_API_KEY=$admin '$BERTH' webhook remove hook-n && '$BERTH' audit | grep -q webhook.remove"
# a counter never goes down: the attempts of removed webhooks stay counted
as "$admin" webhook list --json | python3 -c 'import json,sys; print("\n".join(w["name"] for w in json.load(sys.stdin)["webhooks"]))' >"$T_TMP/names"
while read -r w; do as "$admin" webhook remove "$w" >/dev/null; done <"$T_TMP/names"
ok_after=$(metric 'berth_webhook_attempts_total{outcome="success"}')
failed_after=$(metric 'berth_webhook_attempts_total{outcome="failure"}')
# (attempts still in flight to the hanging receiver may add some meanwhile: never fewer; without the carried counts
# they would read 0, every attempt row being gone with its webhook)
check "with every webhook removed, the attempts counters do not go down ($ok_before/$failed_before -> $ok_after/$failed_after)" \
  test "${ok_before:-0}" -gt 0 -a "${ok_after:--1}" -ge "${ok_before:-0}" -a "${failed_after:--1}" -ge "${failed_before:-0}"
finish
