#!/usr/bin/env bash
# The command table against the program: `berth completion bash|zsh|fish` complete what the table lists (groups,
# subcommands, flags, flag values), every flag of the table is in its command's --help and every flag a --help
# names is in the table. Needs no Docker daemon; zsh and fish are checked where they are installed.
set -u
BERTH=${BERTH:?set BERTH to the berth binary}
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok - $1"; }
not_ok() { fail=$((fail + 1)); echo "not ok - $1"; }
tmp=$(mktemp -d /tmp/berth-completion.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

for sh in bash zsh fish; do
  if "$BERTH" completion $sh >"$tmp/$sh" 2>"$tmp/$sh.err" && [ -s "$tmp/$sh" ]; then
    ok "berth completion $sh prints a script"
  else
    not_ok "berth completion $sh: $(cat "$tmp/$sh.err")"
  fi
done
"$BERTH" completion tcsh >/dev/null 2>&1
[ $? -eq 125 ] && ok "an unknown shell is a usage error (125)" || not_ok "berth completion tcsh should exit 125"
BERTH_SERVER=http://127.0.0.1:9 "$BERTH" completion bash >/dev/null 2>&1 && ok "completion is local with BERTH_SERVER set" ||
  not_ok "completion with BERTH_SERVER set"

# bash: what COMPREPLY holds for a command line (the last word is the one being completed)
complete_bash() {
  bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _berth; echo "${COMPREPLY[*]}"' \
    _ "$tmp/bash" "$@"
}
expect_bash() { # expect_bash "EXPECTED" WORD...
  local want=$1 got
  shift
  got=$(complete_bash "$@")
  [ "$got" = "$want" ] && ok "bash: '$*' -> '$want'" || not_ok "bash: '$*' -> '$got', expected '$want'"
}
expect_bash "task" berth ta
expect_bash "run list show logs cancel retry prune" berth task ''
expect_bash "--help --skip-init --env --secret-env --detach --json" berth task run --
expect_bash "none bridge host" berth stack create web --network ''
expect_bash "always if-not-present never" berth stack update web --pull ''
expect_bash "list logs" berth --server http://127.0.0.1:8420 task l
expect_bash "list verify" berth audit ''
expect_bash "--help --json" berth doctor --
expect_bash "bash zsh fish" berth completion ''
expect_bash "" berth stack create web --image ''
bash -c 'source "$1"; complete -p berth' _ "$tmp/bash" | grep -q -- '-F _berth berth' &&
  ok "bash: complete -p berth names _berth" || not_ok "bash: complete -p berth"

if command -v zsh >/dev/null 2>&1; then
  zsh -n "$tmp/zsh" && ok "zsh: the script parses" || not_ok "zsh -n"
  head -n 1 "$tmp/zsh" | grep -qx '#compdef berth' && ok "zsh: #compdef berth" || not_ok "zsh: no #compdef line"
  # an interactive zsh on a pseudo-terminal (zpty), with the script as _berth in its fpath, gets TAB after LINE
  mkdir -p "$tmp/fpath"
  cp "$tmp/zsh" "$tmp/fpath/_berth"
  cat >"$tmp/zpty.zsh" <<'EOF'
zmodload zsh/zpty zsh/datetime
zpty z 'TERM=dumb zsh -f -i'
zpty -w z "fpath=($1 \$fpath); autoload -Uz compinit; compinit -u -D; PS1='%% '; berth() {}"
zpty -w z 'zstyle ":completion:*" list-prompt ""; echo READY'
# a loaded machine can be slow to start zsh and compinit: wait for READY (twice: the echo, then its output)
out=""; deadline=$(( EPOCHREALTIME + 30 ))
while (( EPOCHREALTIME < deadline )); do
  if zpty -r -t z line; then out+=$line; [[ $out == *READY*READY* ]] && break; else sleep 0.05; fi
done
zpty -n -w z "$2"$'\t'
# then collect what TAB shows until the terminal has been quiet for a second (at most 15 s)
out=""; deadline=$(( EPOCHREALTIME + 15 )); quiet=0
while (( EPOCHREALTIME < deadline )); do
  if zpty -r -t z line; then out+=$line; quiet=0; else sleep 0.1; (( quiet++ )); (( quiet >= 10 && ${#out} > 0 )) && break; fi
done
print -r -- "$out"
zpty -d z
EOF
  expect_zsh() { # expect_zsh LINE REGEX: what the terminal shows after TAB matches REGEX
    local got
    got=$(timeout 60 zsh -f "$tmp/zpty.zsh" "$tmp/fpath" "$1" 2>&1 | tr -d '\r')
    grep -qE -- "$2" <<<"$got" && ok "zsh: '$1' TAB" || not_ok "zsh: '$1' TAB: $(tail -n 3 <<<"$got" | tr '\n' ' ')"
  }
  expect_zsh 'berth au' 'berth audit $'
  expect_zsh 'berth stack create x --netw' 'berth stack create x --network $'
  expect_zsh 'berth stack create x --network ' '^bridge +host +none'
  expect_zsh 'berth task ' '^run +-- run a command in a fresh container'
else
  echo "skip - zsh not installed (ci/install-deps.sh installs it)"
fi
if command -v fish >/dev/null 2>&1; then
  fish -n "$tmp/fish" && ok "fish: the script parses" || not_ok "fish -n"
  got=$(fish -c "source $tmp/fish; complete -C 'berth task '" | cut -f1 | tr '\n' ' ')
  [ "$got" = "cancel list logs prune retry run show " ] && ok "fish: 'berth task ' -> $got" || not_ok "fish: 'berth task ' -> '$got'"
  got=$(fish -c "source $tmp/fish; complete -C 'berth stack create x --network '" | cut -f1 | tr '\n' ' ')
  [ "$got" = "bridge host none " ] && ok "fish: --network values" || not_ok "fish: --network values -> '$got'"
else
  echo "skip - fish not installed (ci/install-deps.sh installs it)"
fi

# The table and --help agree: the bash script's `'GROUP SUB') words='...'` lines are the table's flags.
drift=0
declare -A group_flags
while IFS= read -r line; do
  key=$(sed -E "s/^    '([^']*)'.*/\1/" <<<"$line")
  words=$(sed -E "s/.*words='([^']*)'.*/\1/" <<<"$line")
  group_flags[${key%% *}]+=" $words "
  # shellcheck disable=SC2086 # key is GROUP [SUB]
  help=$("$BERTH" $key --help 2>&1)
  for w in $words; do
    if [ "$w" != --help ] && ! grep -q -e "$w" <<<"$help"; then
      not_ok "table flag $w of 'berth $key' is not in its --help"
      drift=1
    fi
  done
done < <(grep -E "^    '[a-z]+ [a-z]*'\) words=" "$tmp/bash")
for group in "${!group_flags[@]}"; do
  for w in $("$BERTH" "$group" --help 2>&1 | grep -oE -- '--[a-z][a-z-]*' | sort -u); do
    case "${group_flags[$group]}" in
    *" $w "*) ;;
    *)
      not_ok "flag $w of 'berth $group --help' is not in the command table"
      drift=1
      ;;
    esac
  done
done
# every group `berth --help` lists has its entries in the table (else it would have no completions and no flags in
# its man page): a new group is one line in main.c plus its subcommands in command_table.c
for group in $("$BERTH" --help | sed -n '/^commands:/,/^$/p' | awk 'NF > 1 {print $1}'); do
  if [ -z "${group_flags[$group]+set}" ]; then
    not_ok "group '$group' has no entries in src/cli/command_table.c"
    drift=1
  fi
done
[ $drift -eq 0 ] && ok "the command table and every --help name the same flags (${#group_flags[@]} groups)"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
