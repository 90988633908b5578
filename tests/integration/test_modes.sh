#!/usr/bin/env bash
# One command layer, two back ends: every read command of the command table prints the same bytes and exits with the
# same status run locally (libberth on BERTH_HOME) and through `berth serve` on the same store (--server URL): its
# --json record, its human output, and a not-found case; every command's --help is the same text in both modes; and
# every change prints the same and exits the same on an object of its own per mode.
# The commands come from the table (`berth __man --commands`): a command this script does not know fails, by name,
# until it is listed below as a read (with arguments) or as a change.
. "$(dirname "$0")/lib.sh"
S=$(stack_name modes)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
ISSUER=https://issuer.modes.example

# ---- a store with something in every list ----
printf '{"oidc_issuer": "%s"}\n' "$ISSUER" >"$BERTH_HOME/config.json"
"$BERTH" stack create "$S" --image berth/busybox:latest --label team=ops --env A=1 --secret-env TOKEN=modes-secret-1 \
  --persist out >/dev/null 2>&1
check "stack created" test $? -eq 0
# the command names the secret value: every record shows it as ***
"$BERTH" task run "$S" -- 'echo out; echo err >&2; mkdir -p out; echo x > out/f; echo modes-secret-1 >/dev/null' \
  >/dev/null 2>&1
check "a task ran" test $? -eq 0
id=$(last_task "$S")
"$BERTH" stack lock "$S" --note "modes test" >/dev/null 2>&1
printf '{"name": "no-rm", "command": "rm -rf", "decision": "deny", "message": "no"}\n' >"$T_TMP/p.json"
"$BERTH" policy add "$T_TMP/p.json" >/dev/null 2>&1
check "a policy added" test $? -eq 0
"$BERTH" oidc rotate >/dev/null 2>&1
check "an OIDC key made" test $? -eq 0
KEY=$("$BERTH" key create modes-admin --role admin 2>/dev/null)
"$BERTH" key create modes-reader --role reader --stack "$S" >/dev/null 2>&1

"$BERTH" serve --listen "tcp:127.0.0.1:$PORT" --public-url "$ISSUER" >"$T_TMP/serve.log" 2>&1 &
SRV=$!
trap 'kill $SRV 2>/dev/null; wait $SRV 2>/dev/null; t_cleanup' EXIT
for _ in $(seq 1 50); do curl -s "$URL/" >/dev/null 2>&1 && break; sleep 0.1; done
check "berth serve answers" curl -sf "$URL/"
# the admin key has been used once, so its last_used_at is set (and changes with every call: see norm)
BERTH_SERVER=$URL BERTH_API_KEY=$KEY "$BERTH" stack list >/dev/null 2>&1

# ---- the commands ----
# The reads, with their arguments ("" = none). A read with a --json flag is run with and without it.
declare -A READS=(
  ["doctor"]=""
  ["stack list"]=""
  ["stack show"]="$S"
  ["stack state"]="$S"
  ["task list"]=""
  ["task show"]="$id"
  ["task logs"]="$id"
  ["audit"]=""
  ["audit list"]=""
  ["audit verify"]=""
  ["image list"]=""
  ["image check"]="busybox"
  ["policy list"]=""
  ["policy test"]="$S -- rm -rf /"
  ["key list"]=""
  ["oidc jwks"]=""
  ["oidc config"]=""
  ["host list"]=""
  ["host show"]="itest-$$"
  ["schedule list"]=""
  ["webhook list"]=""
)
# Reads of the local machine only, and the commands that change something (covered by their own tests).
declare -A CHANGES=()
for c in "task run" "task cancel" "stack create" "stack update" "stack delete" "stack lock" "stack unlock" \
  "image allow" "image deny" "image remove" "policy add" "policy remove" "key create" "key revoke" "oidc rotate" \
  "task retry" "task prune" "host drain" "host undrain" "host remove" "schedule add" "schedule show" "schedule pause" "schedule resume" \
  "schedule remove" "webhook add" "webhook remove" "webhook deliveries" "webhook redeliver" \
  "serve" "completion bash" "completion zsh" "completion fish" "store info" "store migrate" "store copy"; do
  CHANGES[$c]=1
done
# Not found: the command line and its exit status, in both modes.
NOT_FOUND=("stack show nope-$$" "stack state nope-$$" "task show 01nope$$" "task logs 01nope$$"
  "policy test nope-$$ -- true")

local_run() { "$BERTH" "$@"; }
server_run() { BERTH_SERVER=$URL BERTH_API_KEY=$KEY "$BERTH" "$@"; }
# What legitimately differs per call: relative times ("3 s ago", and the padding after them) are read from the
# clock by each command; the admin key's last use is the call itself.
norm() {
  sed -E -e 's/just now|[0-9]+ (s|min|h|days?) ago/AGO/g' -e 's/AGO +/AGO /g' \
    -e '/"last_used_at"/d' -e '/"heartbeat_at"/d' -e 's/^(modes-admin +[^ ]+ +[^ ]+ +[^ ]+ +)[^ ]+/\1LAST/'
}
# same WHAT ARGS...: runs berth ARGS in both modes; the outputs (normalized) and exit statuses must be equal.
same() {
  local what=$1
  shift
  local_run "$@" >"$T_TMP/l.out" 2>"$T_TMP/l.err" </dev/null
  local lrc=$?
  server_run "$@" >"$T_TMP/s.out" 2>"$T_TMP/s.err" </dev/null
  local src=$?
  cat "$T_TMP/l.out" "$T_TMP/l.err" "$T_TMP/s.out" "$T_TMP/s.err" >>"$T_TMP/all.log"
  norm <"$T_TMP/l.out" >"$T_TMP/l.n"
  norm <"$T_TMP/s.out" >"$T_TMP/s.n"
  if [ $lrc -eq $src ] && cmp -s "$T_TMP/l.n" "$T_TMP/s.n" && cmp -s "$T_TMP/l.err" "$T_TMP/s.err"; then
    ok "$what: the same in both modes (exit $lrc, $(wc -c <"$T_TMP/l.out") bytes)"
  else
    fail "$what: local exit $lrc, server exit $src"
    diff "$T_TMP/l.n" "$T_TMP/s.n" | head -20
    diff "$T_TMP/l.err" "$T_TMP/s.err" | head -10
  fi
}
has_json_flag() { "$BERTH" "$@" --help 2>&1 | grep -q -- '--json'; }

mapfile -t commands < <("$BERTH" __man --commands)
check "the command table lists commands" test "${#commands[@]}" -gt 20
for c in "${commands[@]}"; do
  read -r -a words <<<"$c"
  same "berth $c --help" "${words[@]}" --help
  if [ -n "${READS[$c]+set}" ]; then
    read -r -a args <<<"${READS[$c]}"
    same "berth $c" "${words[@]}" "${args[@]}"
    has_json_flag "${words[@]}" && same "berth $c --json" "${words[@]}" --json "${args[@]}"
  elif [ -z "${CHANGES[$c]+set}" ]; then
    fail "berth $c is in the command table but not in test_modes.sh: list it in READS (with arguments) or CHANGES"
  fi
done
for g in $("$BERTH" __man --commands | cut -d' ' -f1 | sort -u); do
  same "berth $g --help" "$g" --help
  "$BERTH" "$g" --help >"$T_TMP/h1" 2>&1
  for alt in "help $g" "$g help" "$g -h"; do # one help, whichever way it is asked for
    read -r -a words <<<"$alt"
    "$BERTH" "${words[@]}" >"$T_TMP/h2" 2>&1
    rc=$?
    check "berth $alt: exit 0 and the text of berth $g --help (exit $rc)" sh -c '[ $1 -eq 0 ] && cmp -s "$2" "$3"' _ $rc "$T_TMP/h1" "$T_TMP/h2"
  done
done
for c in "${commands[@]}"; do
  read -r -a words <<<"$c"
  [ "${#words[@]}" -eq 2 ] || continue
  "$BERTH" "${words[@]}" --help >"$T_TMP/h1" 2>&1
  "$BERTH" help "${words[@]}" >"$T_TMP/h2" 2>&1
  check "berth help $c is berth $c --help" cmp -s "$T_TMP/h1" "$T_TMP/h2"
done
"$BERTH" help no-such-command >/dev/null 2>"$T_TMP/h.err"
check "berth help of an unknown command: exit 125, one line" sh -c '[ $1 -eq 125 ] && [ "$(wc -l <"$2")" -eq 1 ]' _ $? "$T_TMP/h.err"
for c in "${NOT_FOUND[@]}"; do
  read -r -a words <<<"$c"
  same "not found: berth $c" "${words[@]}"
  check "  ...which is an error (exit $(local_run "${words[@]}" >/dev/null 2>&1; echo $?))" \
    sh -c "! \"$BERTH\" $c >/dev/null 2>&1"
done
# ---- changes: the same command line, on an object of its own per mode, prints the same (the name aside) ----
# change WHAT RC ARGS...: exits RC in both modes; @ in ARGS is the object's name: $S-l locally, $S-s through the server
change() {
  local what=$1 want=$2
  shift 2
  "$BERTH" "${@//@/$S-l}" >"$T_TMP/l.out" 2>"$T_TMP/l.err" </dev/null
  local lrc=$?
  server_run "${@//@/$S-s}" >"$T_TMP/s.out" 2>"$T_TMP/s.err" </dev/null
  local src=$?
  for m in l s; do
    cat "$T_TMP/$m.out" "$T_TMP/$m.err" >>"$T_TMP/all.log"
    sed -E -e "s/$S-$m/@/g" -e 's/berth_[0-9a-f]{12}_[A-Za-z0-9_-]{43}/KEY/g' -e 's/signing key [^ ]+/signing key KID/' \
      "$T_TMP/$m.out" "$T_TMP/$m.err" >"$T_TMP/$m.n"
  done
  if [ $lrc -eq "$want" ] && [ $src -eq "$want" ] && cmp -s "$T_TMP/l.n" "$T_TMP/s.n"; then
    ok "$what: the same in both modes (exit $lrc, $(wc -l <"$T_TMP/l.n") lines)"
  else
    fail "$what: local exit $lrc, server exit $src"
    diff "$T_TMP/l.n" "$T_TMP/s.n" | head -10
  fi
}
printf '[{"name": "@-a", "command": "^curl", "decision": "deny"}, {"name": "@-b", "decision": "allow"}]\n' \
  >"$T_TMP/two.json"
sed "s/@/$S-l/g" "$T_TMP/two.json" >"$T_TMP/two-$S-l.json"
sed "s/@/$S-s/g" "$T_TMP/two.json" >"$T_TMP/two-$S-s.json"
change "stack create" 0 stack create @ --image berth/busybox:latest --label x --secret-env K=modes-secret-1
change "stack create (an image the allowlist denies: a warning)" 0 stack create @-d --image docker.io/library/alpine:3.19
change "stack create (it exists)" 125 stack create @ --image berth/busybox:latest
change "stack update" 0 stack update @ --env B=2 --unset-secret-env K
change "stack update (a variable that is not set)" 125 stack update @ --unset-env NOPE
change "stack lock" 0 stack lock @ --note "modes"
change "stack unlock" 0 stack unlock @
change "stack delete" 0 stack delete @
change "stack delete (no such stack)" 125 stack delete @
change "image allow" 0 image allow "registry.modes.example/@/*"
change "image allow (again)" 0 image allow "registry.modes.example/@/*"
change "image deny" 0 image deny "registry.modes.example/@/bad:*"
change "image remove" 0 image remove "registry.modes.example/@/*"
change "image remove (no such rule)" 125 image remove "registry.modes.example/@/*"
change "policy add" 0 policy add "$T_TMP/two-@.json"
change "policy remove" 0 policy remove @-a
change "policy remove (no such rule)" 125 policy remove @-a
change "key create" 0 key create @ --role reader --stack "$S"
change "key revoke" 0 key revoke @
change "key revoke (no such key)" 125 key revoke @
change "oidc rotate" 0 oidc rotate --alg ES256
change "task cancel (no such task)" 125 task cancel 01nope@
change "task prune (no --older-than)" 125 task prune --stack @
change "task prune (not a duration)" 125 task prune --older-than soon
server_run task prune --older-than 3650d --dry-run --json >"$T_TMP/prune.json" 2>&1
check "task prune --dry-run through the server answers its count" python3 -c 'import json,sys
r=json.load(open(sys.argv[1])); sys.exit(not (r["dry_run"] is True and r["tasks"] == 0))' "$T_TMP/prune.json"
check "the secret value never shows, in either mode" sh -c "! grep -q modes-secret-1 '$T_TMP/all.log'"
finish
