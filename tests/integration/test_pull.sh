#!/usr/bin/env bash
# Image pulls: registry auth from the docker config's `auths` reaches the daemon as X-Registry-Auth (checked by a
# recording proxy in front of the real daemon), transient failures are retried with backoff, and neither the
# password nor the auth header shows up in the task's output or records.
if [ -n "${BERTH_STORE:-}" ]; then
  # a fleet host pulls with its own DOCKER_HOST and DOCKER_CONFIG, not the ones this test gives one `task run`
  echo "skipped on PostgreSQL: the pull runs on the host that claims the task; tested on SQLite"
  exit 0
fi
. "$(dirname "$0")/lib.sh"
S=$(stack_name pull)
mkdir -p "$T_TMP/dockercfg"
auth=$(printf 'robot:pa55-w0rd-XYZ' | base64)
cat >"$T_TMP/dockercfg/config.json" <<JSON
{"auths": {"127.0.0.1:9": {"auth": "$auth"}}}
JSON
"$BERTH" image allow '127.0.0.1:9/**' >/dev/null
"$BERTH" stack create "$S" --image 127.0.0.1:9/team/app:1 --pull always >/dev/null
python3 "$(dirname "$0")/docker_proxy.py" "$T_TMP/rec.sock" --record "$T_TMP/requests" &
proxy=$!
for _ in $(seq 1 50); do [ -S "$T_TMP/rec.sock" ] && break; sleep 0.1; done
start=$(date +%s)
rc=$(DOCKER_CONFIG=$T_TMP/dockercfg DOCKER_HOST=unix://$T_TMP/rec.sock run "$T_TMP/out" "$T_TMP/err" "$S" -- true)
took=$(($(date +%s) - start))
kill $proxy
wait $proxy 2>/dev/null
check "a pull from a registry that does not answer: exit 125" test "$rc" -eq 125
check "the pull was retried (4 attempts)" test "$(grep -c 'POST /v[0-9.]*/images/create' "$T_TMP/requests")" -eq 4
check "with backoff between attempts (${took}s >= 7s)" test "$took" -ge 7
check "the request names the reference with an explicit tag" grep -q 'fromImage=127.0.0.1%3A9%2Fteam%2Fapp&tag=1' "$T_TMP/requests"
hdr=$(grep -i '^X-Registry-Auth:' "$T_TMP/requests" | head -n 1 | cut -d' ' -f2 | tr -d '\r')
check "X-Registry-Auth is sent" test -n "$hdr"
check "it carries the config's credentials for that registry (base64url JSON)" python3 -c "
import base64,json,sys; h='$hdr'; d=json.loads(base64.urlsafe_b64decode(h + '=' * (-len(h) % 4)))
assert d['username']=='robot' and d['password']=='pa55-w0rd-XYZ' and d['serveraddress']=='127.0.0.1:9', d"
id=$(last_task "$S")
"$BERTH" task logs "$id" >"$T_TMP/logs" 2>&1
"$BERTH" task show "$id" --json >"$T_TMP/show"
for f in out err logs show; do
  check "$f: no password, no auth header" sh -c "! grep -qF -e pa55-w0rd-XYZ -e '$hdr' '$T_TMP/$f'"
done
check "the failure says the pull failed" grep -qi 'pull' "$T_TMP/err"
finish
