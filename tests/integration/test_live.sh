#!/usr/bin/env bash
# Live output through a real container: a line printed before a quiet stretch reaches the follower at once, with
# 100 secret values and the built-in patterns on; a partial line likewise, unless it is the beginning of a secret
# (then it waits, and completing the secret masks it). Locally (`task run`) and over HTTP (`task logs --follow`
# against `berth serve`). The test takes the timestamps: the command prints its own clock, the reader notes arrival.
. "$(dirname "$0")/lib.sh"
S=$(stack_name live)
secrets=()
for i in $(seq 1 100); do secrets+=(--secret-env "LIVE_$i=live-value-$i-$(head -c 9 /dev/urandom | base64 | tr -d '/+=')"); done
"$BERTH" stack create "$S" --image berth/runner:latest "${secrets[@]}" --secret-env LIVE_TOKEN=tok-Secret-8842 \
  >/dev/null
check "stack with 101 secret values" test $? -eq 0

# stamp: prints "WORD LAG_MS" once for each "WORD <13-digit ms>" token, the moment its digits are complete; and
# "MASK <bytes>" the first time the bytes after "MASK " contain a newline, or at the end.
stamp() { python3 -c '
import os, re, sys, time
buf, seen = b"", set()
while True:
    chunk = os.read(0, 65536)
    now = int(time.time() * 1000)
    if not chunk:
        break
    buf += chunk
    for m in re.finditer(rb"(EARLY|LATE|PART|HELD) ([0-9]{13})", buf):
        w = m.group(1).decode()
        if w not in seen:
            seen.add(w); print(w, now - int(m.group(2)), flush=True)
    i = buf.find(b"WAIT:")
    if i >= 0 and "WAIT" not in seen:
        seen.add("WAIT"); print("WAIT", buf[i + 5:].split(b"\n")[0].decode(errors="replace"), now, flush=True)
print("ALL", buf.decode(errors="replace").replace("\n", "|"), flush=True)
'; }
# A secret prefix at the end of a partial line must wait; `HELD <ms>` is printed after it completes.
cmd='echo "EARLY $(date +%s%3N)"; sleep 2; echo "LATE $(date +%s%3N)"; printf "PART $(date +%s%3N)."; sleep 2;
printf "\nWAIT:tok-Sec"; sleep 1.5; printf "ret-8842 HELD $(date +%s%3N)\n"'
lag() { awk -v w="$2" '$1 == w { print $2; exit }' "$1"; }

timeout 60 "$BERTH" task run "$S" -- "$cmd" 2>/dev/null </dev/null | stamp >"$T_TMP/local"
for w in EARLY LATE PART; do
  l=$(lag "$T_TMP/local" $w)
  check "task run: $w reaches the follower within 300 ms of being printed (${l:-never} ms)" test "${l:-99999}" -le 300
done
check "task run: the beginning of a secret at the end of a partial line is held back" \
  sh -c "! grep -q 'WAIT .*tok' '$T_TMP/local'"
check "task run: completing it masks it" grep -q 'WAIT:\*\*\* HELD' "$T_TMP/local"
check "task run: the secret never shows" sh -c "! grep -q 'Secret-8842' '$T_TMP/local'"

# The same over HTTP: berth serve, a writer key, `task logs --follow` through the server.
t_free_port PORT
key=$("$BERTH" key create live-it --role writer 2>/dev/null | tail -n 1)
"$BERTH" serve --listen "tcp:127.0.0.1:$PORT" >"$T_TMP/serve.log" 2>&1 &
SRV=$!
trap 'kill $SRV 2>/dev/null; wait $SRV 2>/dev/null; t_cleanup' EXIT
for _ in $(seq 1 50); do curl -s "http://127.0.0.1:$PORT/" >/dev/null 2>&1 && break; sleep 0.1; done
id=$(BERTH_SERVER=http://127.0.0.1:$PORT BERTH_API_KEY=$key "$BERTH" task run "$S" --detach -- "$cmd" 2>/dev/null)
check "task run --detach through the server prints the id" test -n "$id"
BERTH_SERVER=http://127.0.0.1:$PORT BERTH_API_KEY=$key timeout 60 "$BERTH" task logs "$id" --follow 2>/dev/null \
  </dev/null | stamp >"$T_TMP/http"
for w in EARLY LATE PART; do
  l=$(lag "$T_TMP/http" $w)
  check "task logs --follow over HTTP: $w arrives within 300 ms (${l:-never} ms)" test "${l:-99999}" -le 300
done
check "over HTTP: the held secret prefix is masked once complete" grep -q 'WAIT:\*\*\* HELD' "$T_TMP/http"
check "over HTTP: the secret never shows" sh -c "! grep -q 'Secret-8842' '$T_TMP/http'"
finish
