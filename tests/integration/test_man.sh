#!/usr/bin/env bash
# The man pages the build makes (cmake/berth-docs.cmake): berth(1) and one page per command group, each rendered
# by groff without a warning, naming every subcommand of the table and carrying the commands' --help text word for
# word. Needs no Docker daemon.
set -u
BERTH=${BERTH:?set BERTH to the berth binary}
build=${BERTH_BUILD_DIR:?set BERTH_BUILD_DIR to the build directory}
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok - $1"; }
not_ok() { fail=$((fail + 1)); echo "not ok - $1"; }
man1=$build/share/man/man1
tmp=$(mktemp -d /tmp/berth-man.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
export LC_ALL=C.UTF-8 MANWIDTH=200

pages=$("$BERTH" __man --list)
[ "$(head -n 1 <<<"$pages")" = berth ] && ok "pages: $(tr '\n' ' ' <<<"$pages")" || not_ok "__man --list: $pages"
for page in $pages; do
  f=$man1/$page.1.gz
  if [ ! -f "$f" ]; then
    not_ok "$page: $f was not built"
    continue
  fi
  warnings=$(zcat "$f" | groff -man -Tutf8 -ww -z 2>&1)
  [ -z "$warnings" ] && ok "$page: groff -man -ww has no warning" || not_ok "$page: groff warns: $warnings"
  if man -l "$f" >"$tmp/$page.txt" 2>"$tmp/$page.err" && grep -q "^NAME" "$tmp/$page.txt"; then
    ok "$page: man -l renders it"
  else
    not_ok "$page: man -l: $(cat "$tmp/$page.err")"
  fi
  # the page is what this binary says now (the build regenerates it whenever berth changes)
  group=${page#berth}
  group=${group#-}
  # shellcheck disable=SC2086 # no group: berth(1)
  if cmp -s <(zcat "$f") <("$BERTH" __man $group); then ok "$page: up to date with the binary"; else not_ok "$page: stale"; fi
done

# berth-task(1) carries `berth task run --help` word for word, and every subcommand has its section
"$BERTH" task run --help | head -n 3 | tail -n 1 >"$tmp/line"
grep -qF "$(cat "$tmp/line")" "$tmp/berth-task.txt" && ok "berth-task(1) quotes task run --help" ||
  not_ok "berth-task(1) lacks: $(cat "$tmp/line")"
for sub in run list show logs cancel; do
  grep -q "^   berth task $sub\$" "$tmp/berth-task.txt" && ok "berth-task(1) has a section for $sub" ||
    not_ok "berth-task(1): no section for $sub"
done
grep -q 'berth-stack(1)' "$tmp/berth.txt" && ok "berth(1) points at berth-stack(1)" || not_ok "berth(1) lacks berth-stack(1)"
"$BERTH" __man nosuchgroup >/dev/null 2>&1
[ $? -eq 125 ] && ok "__man of an unknown group: 125" || not_ok "__man nosuchgroup should exit 125"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
