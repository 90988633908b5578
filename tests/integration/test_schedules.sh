#!/usr/bin/env bash
# Schedules fired by real servers: `* * * * *` fires once per minute (with two servers on one PostgreSQL store, still
# once), a server down across fire times catches up once (or skips, by policy), a paused schedule fires nothing, a
# refused submission is recorded. Waits for two minute boundaries: about 70-130 s.
. "$(dirname "$0")/lib.sh"
S=$(stack_name sch)
K=$(stack_name sck)
for s in $S $K; do "$BERTH" stack create "$s" --image berth/busybox:latest >/dev/null; done
PIDS=""
trap 'for p in $PIDS; do kill $p 2>/dev/null; wait $p 2>/dev/null; done; t_cleanup' EXIT
t_free_port PORT
t_free_port PORT2
U=http://127.0.0.1:$PORT
admin=$("$BERTH" key create sc-admin --role admin 2>/dev/null | tail -n 1)
as() { local k=$1; shift; BERTH_SERVER=$U BERTH_API_KEY=$k "$BERTH" "$@" </dev/null; }
fired() { # fired STACK NAME: the number of tasks the schedule submitted
  "$BERTH" task list --stack "$1" --json | python3 -c 'import json,sys
print(sum(t.get("triggered_by") == "schedule:" + sys.argv[1] for t in json.load(sys.stdin)["tasks"]))' "$2"
}
field() { # field STACK NAME EXPR: a field of `schedule show --json` (d = the schedule)
  "$BERTH" schedule show "$1" "$2" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))' "$3"
}
sql() { # runs SQL on the store, as someone with its database would
  if [ -n "${BERTH_STORE:-}" ]; then psql -X -q -v ON_ERROR_STOP=1 "$BERTH_STORE" -c "$1"; else sqlite3 "$BERTH_HOME/berth.db" "$1"; fi
}

# made while no server runs
check "schedule add STACK NAME --cron '* * * * *'" "$BERTH" schedule add "$S" tick --cron '* * * * *' -- true
added_min=$(($(date +%s) / 60))
"$BERTH" schedule add "$S" sleepy --cron '* * * * *' -- true >/dev/null
check "schedule pause NAME --stack STACK" "$BERTH" schedule pause sleepy --stack "$S"
check "a bad cron expression is refused, naming the field" sh -c \
  "'$BERTH' schedule add '$S' bad --cron '61 * * * *' -- true 2>&1 | grep -q minute"
check "an unknown time zone is refused" sh -c "! '$BERTH' schedule add '$S' bad --cron '@daily' --tz Nowhere/Atlantis -- true"
# two schedules whose one fire time a down server missed, 2.5-3.5 minutes ago
now=$(date +%s)
missed=$(((now - 150) / 60 * 60))
m=$(date -u -d "@$missed" +%M)
"$BERTH" schedule add "$S" late-once --cron "$((10#$m)) * * * *" -- true >/dev/null
"$BERTH" schedule add "$S" late-skip --cron "$((10#$m)) * * * *" --catch-up skip -- true >/dev/null
sql "UPDATE schedules SET next_fire = $((missed * 1000)) WHERE name IN ('late-once', 'late-skip')" >/dev/null
"$BERTH" schedule list --stack "$S" --json >"$T_TMP/list.json"
check "schedule list --json shows the next fire time in UTC, the minute after it was added" python3 - "$T_TMP/list.json" "$added_min" <<'PY'
import datetime as dt, json, sys
s = {x["name"]: x for x in json.load(open(sys.argv[1]))["schedules"]}
t = dt.datetime.fromisoformat(s["tick"]["next_fire_at"].replace("Z", "+00:00")).timestamp()
added = int(sys.argv[2]) * 60  # the minute `date` read just after the add (the add may have run in the one before)
sys.exit(0 if s["tick"]["next_fire_at"].endswith("Z") and t % 60 == 0 and added - 60 < t <= added + 60
         and s["sleepy"]["paused"] else 1)
PY

serve() { # serve PORT [HOME]
  BERTH_HOME=${2:-$BERTH_HOME} "$BERTH" serve --listen "tcp:127.0.0.1:$1" >>"$T_TMP/serve.log" 2>&1 &
  PIDS="$PIDS $!"
  for _ in $(seq 1 50); do curl -s "http://127.0.0.1:$1/" >/dev/null 2>&1 && break; sleep 0.1; done
}
serve "$PORT"
if [ -n "${BERTH_STORE:-}" ]; then # a second host on the same store
  mkdir -p "$T_TMP/home2"
  serve "$PORT2" "$T_TMP/home2"
  hosts=2
else
  hosts=1
fi
# refused: the stack is locked by someone else than the schedule's actor
"$BERTH" stack lock "$K" --note "maintenance" >/dev/null
check "schedule add through the server (admin key)" as "$admin" schedule add "$K" locked --cron '* * * * *' -- true
# a command typed with the stack's secret value or a token in it is shown masked, as a task's is (paused: never fires)
M=$(stack_name scm)
SCH_SECRET=sch3dule-s3cret-value "$BERTH" stack create "$M" --image berth/busybox:latest --secret-env SCH_SECRET \
  >/dev/null
"$BERTH" schedule add "$M" masked --cron '@yearly' -- 'echo sch3dule-s3cret-value ghp_abcdefghijklmnopqrstuvwxyz0123456789' \
  >/dev/null
"$BERTH" schedule pause "$M" masked >/dev/null
"$BERTH" schedule list --json >"$T_TMP/sl.json"
"$BERTH" schedule show "$M" masked >"$T_TMP/ss.txt"
as "$admin" schedule list --json >"$T_TMP/sl-api.json"
as "$admin" schedule show "$M" masked --json >"$T_TMP/ss-api.json"
"$BERTH" audit list --json >"$T_TMP/sa.json"
check "a schedule's command is shown masked: list, show, the API, the audit trail" sh -c \
  "for f in sl.json ss.txt sl-api.json ss-api.json sa.json; do grep -q 'echo \*\*\* ' '$T_TMP/'\$f || exit 1; done;
   ! grep -l -e sch3dule-s3cret -e ghp_abcdef '$T_TMP/sl.json' '$T_TMP/ss.txt' '$T_TMP/sl-api.json' '$T_TMP/ss-api.json' '$T_TMP/sa.json'"
# ...and it stays masked once the secret is rotated (masked as it was added, as a task's command is)
SCH_SECRET=r0tated-value "$BERTH" stack update "$M" --secret-env SCH_SECRET >/dev/null
"$BERTH" schedule show "$M" masked --json >"$T_TMP/ss-rot.json"
as "$admin" schedule list --json >"$T_TMP/sl-rot.json"
check "  ...after the secret is rotated too" sh -c \
  "grep -q 'echo \*\*\* ' '$T_TMP/ss-rot.json' && ! grep -l sch3dule-s3cret '$T_TMP/ss-rot.json' '$T_TMP/sl-rot.json'"
for _ in $(seq 1 30); do [ "$(fired "$S" late-once)" -ge 1 ] && break; sleep 0.2; done
sleep 2
check "a server down across a fire time catches up once ($(fired "$S" late-once) task)" test "$(fired "$S" late-once)" = 1
check "  ...with --catch-up skip it submits nothing and records the miss ($(fired "$S" late-skip) tasks, $(field "$S" late-skip 'd["last_fire"]["outcome"]'))" \
  test "$(fired "$S" late-skip)" = 0 -a "$(field "$S" late-skip 'd["last_fire"]["outcome"]')" = missed

# two minute boundaries more: once per minute boundary since it was added (a set-up that ran across one had its
# fire already, by the server or by its catch-up)
for round in 1 2; do
  sleep $((60 - $(date +%s) % 60 + 8))
  want=$(($(date +%s) / 60 - added_min))
  check "minute $round, $hosts server(s): '* * * * *' fired exactly $want task(s), one per minute since it was added ($(fired "$S" tick))" \
    test "$(fired "$S" tick)" = $want
done
check "  ...each as schedule:tick, at a distinct minute" sh -c "'$BERTH' task list --stack '$S' --json | python3 -c '
import json, sys
t = [x for x in json.load(sys.stdin)[\"tasks\"] if x[\"triggered_by\"] == \"schedule:tick\"]
sys.exit(0 if len(t) == $want and len({x[\"created_at\"][:16] for x in t}) == $want else 1)'"
check "a paused schedule fired nothing ($(fired "$S" sleepy))" test "$(fired "$S" sleepy)" = 0
check "a refused fire is recorded with its reason ($(field "$K" locked 'd["last_fire"]["outcome"]'))" sh -c \
  "test \"\$('$BERTH' schedule show '$K' locked --json | python3 -c 'import json,sys; l=json.load(sys.stdin)[\"last_fire\"]; print(l[\"outcome\"], \"locked\" in l[\"message\"])')\" = 'refused True'"
check "  ...and in the audit trail" sh -c "'$BERTH' audit | grep schedule.fire | grep -q refused"
check "schedule fires in /metrics" sh -c \
  "curl -s -H 'Authorization: Bearer $admin' $U/metrics | grep -q '^berth_schedule_fires_total{outcome=\"submitted\"} [1-9]'"
fires() { curl -s -H "Authorization: Bearer $admin" "$U/metrics" | awk '$1 == "berth_schedule_fires_total{outcome=\"submitted\"}" { print $2 }'; }
fires_before=$(fires)
check "schedule remove STACK NAME (audited)" sh -c "'$BERTH' schedule remove '$S' tick && '$BERTH' audit | grep -q schedule.remove"
fires_after=$(fires)
check "  ...and its fires stay counted in /metrics ($fires_before -> $fires_after)" \
  test "${fires_before:-0}" -gt 0 -a "${fires_after:--1}" -ge "${fires_before:-0}"
finish
