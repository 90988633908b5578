#!/usr/bin/env bash
# The Debian package on a clean machine: ci/package.sh builds berth_*.deb; a clean Debian bookworm image is made
# offline (runner-image/build.sh clean: mmdebstrap minbase plus exactly the packages the .deb's Depends names, and
# man-db to read man pages; cached by the hash of that list), and in a container of it, without network,
# `apt-get install ./berth_*.deb` installs the package. Then: berth --version, berth doctor (no Docker in there: it
# must still print its report), man -w, bash completion, the berth user, /var/lib/berth, the unit, a reinstall
# with dpkg -i and a purge.
set -u
src=${BERTH_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${BERTH_BUILD_DIR:-$src/build}
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok - $1"; }
not_ok() { fail=$((fail + 1)); echo "not ok - $1"; }
tmp=$(mktemp -d /tmp/berth-package.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
image=${BERTH_CLEAN_TAG:-berth/debian-clean:latest}
start=$SECONDS

if ! deb=$(BERTH_JOBS=2 "$src/ci/package.sh" --build-dir "$build/package" --out "$tmp" 2>"$tmp/package.log" | tail -n 1) ||
  [ ! -f "$deb" ]; then
  cat "$tmp/package.log"
  not_ok "ci/package.sh builds a .deb"
  echo "$pass passed, $fail failed"
  exit 1
fi
ok "ci/package.sh built $(basename "$deb") in $((SECONDS - start))s"

depends=$(dpkg-deb -f "$deb" Depends)
for lib in libcurl4 libarchive13 libsqlite3-0 libsodium23 libmicrohttpd12 libc6 adduser; do
  grep -q "\b$lib\b" <<<"$depends" && ok "Depends names $lib" || not_ok "Depends lacks $lib: $depends"
done
contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
for f in ./usr/bin/berth ./usr/lib/systemd/system/berth.service ./usr/share/man/man1/berth.1.gz \
  ./usr/share/man/man1/berth-task.1.gz ./usr/share/bash-completion/completions/berth \
  ./usr/share/zsh/vendor-completions/_berth ./usr/share/fish/vendor_completions.d/berth.fish; do
  grep -qx -- "$f" <<<"$contents" && ok "the package holds ${f#.}" || not_ok "the package lacks ${f#.}"
done

# lintian, where installed: no error or warning beyond the two that need a decision of the project's (a real
# Maintainer address: -DBERTH_PACKAGE_MAINTAINER=...; a license for debian/copyright)
if command -v lintian >/dev/null 2>&1; then
  lintian --allow-root "$deb" 2>&1 | grep -E '^[EW]: ' |
    grep -vE ': (bogus-mail-host|bogus-mail-host-in-debian-changelog|no-copyright-file)( |$)' >"$tmp/lintian"
  if [ -s "$tmp/lintian" ]; then
    not_ok "lintian: $(tr '\n' ' ' <"$tmp/lintian")"
  else
    ok "lintian: no error or warning but the maintainer address and the copyright file"
  fi
else
  echo "skip - lintian is not installed"
fi

# The clean image gets what Depends names (the first of alternatives, no versions) and man-db: apt cannot fetch
# anything in the test container.
pkgs=$(tr ',' '\n' <<<"$depends" | sed -e 's/|.*//' -e 's/(.*)//' -e 's/[[:space:]]//g' | grep -v '^$' | sort -u |
  paste -sd, -)
pkgs="$pkgs,man-db"
if BERTH_CLEAN_TAG=$image BERTH_CLEAN_PACKAGES=$pkgs "$src/ci/build-images.sh" clean >"$tmp/image.log" 2>&1; then
  ok "clean image $image ($(tail -n 1 "$tmp/image.log" | sed 's/^build-images: //'))"
else
  cat "$tmp/image.log"
  not_ok "building the clean image $image"
  echo "$pass passed, $fail failed"
  exit 1
fi
if docker run --rm --network none "$image" sh -c 'test ! -e /usr/bin/berth && ! getent passwd berth' >/dev/null 2>&1; then
  ok "the image has no berth and no berth user before the install"
else
  not_ok "the clean image already has berth"
fi

# Everything below runs in one container; each check prints `ok NAME` or `FAIL NAME: detail`.
cat >"$tmp/inside.sh" <<'EOF'
set -u
say() { echo "$1 $2"; }
check() { # check NAME command...
  local name=$1 out
  shift
  if out=$("$@" 2>&1); then say ok "$name"; else say FAIL "$name: $(echo "$out" | tail -n 3 | tr '\n' ' ')"; fi
}
check "apt-get install ./berth_*.deb installs it offline" env DEBIAN_FRONTEND=noninteractive apt-get install -y /pkg/berth.deb
check "berth is /usr/bin/berth" test "$(command -v berth)" = /usr/bin/berth
v=$(berth --version 2>&1)
case "$v" in "berth "*" (commit "*")") say ok "berth --version: $v" ;; *) say FAIL "berth --version: $v" ;; esac
doctor=$(berth doctor 2>&1)
rc=$?
if { [ $rc -eq 0 ] || [ $rc -eq 125 ]; } && grep -q '^store ' <<<"$doctor"; then
  say ok "berth doctor reports (exit $rc): $(echo "$doctor" | tr '\n' ' ')"
else
  say FAIL "berth doctor (exit $rc): $doctor"
fi
check "man -w berth" test "$(man -w berth)" = /usr/share/man/man1/berth.1.gz
check "man -w berth-task" test "$(man -w berth-task)" = /usr/share/man/man1/berth-task.1.gz
check "man berth renders" sh -c 'MANWIDTH=80 man berth 2>&1 | grep -q "berth-stack(1)"'
check "bash completion: complete -p berth" bash -c \
  'source /usr/share/bash-completion/completions/berth && complete -p berth | grep -q -- "-F _berth berth"'
check "bash completion completes 'berth ta'" bash -c 'source /usr/share/bash-completion/completions/berth &&
  COMP_WORDS=(berth ta) COMP_CWORD=1 && _berth && [ "${COMPREPLY[*]}" = task ]'
check "the berth user is a system user" sh -c 'uid=$(getent passwd berth | cut -d: -f3) && [ "$uid" -lt 1000 ]'
check "/var/lib/berth is berth:berth 0750" test "$(stat -c '%U:%G %a' /var/lib/berth)" = "berth:berth 750"
check "the unit runs /usr/bin/berth as berth" sh -c \
  'grep -q "^ExecStart=/usr/bin/berth serve" /usr/lib/systemd/system/berth.service && grep -q "^User=berth" /usr/lib/systemd/system/berth.service'
check "berth runs as the berth user" su -s /bin/sh berth -c 'BERTH_HOME=/var/lib/berth berth stack list'
check "a reinstall keeps the user" dpkg -i /pkg/berth.deb
check "dpkg --purge removes it" sh -c 'dpkg --purge berth && test ! -e /usr/bin/berth'
check "the store stays after a purge" test -d /var/lib/berth
EOF
docker run --rm --network none -v "$deb:/pkg/berth.deb:ro" -v "$tmp/inside.sh:/pkg/inside.sh:ro" "$image" \
  bash /pkg/inside.sh >"$tmp/inside.out" 2>&1
while read -r verdict rest; do
  case "$verdict" in
  ok) ok "$rest" ;;
  FAIL) not_ok "$rest" ;;
  *) not_ok "unexpected output in the container: $verdict $rest" ;;
  esac
done <"$tmp/inside.out"
[ "$(grep -c '^ok ' "$tmp/inside.out")" -eq 16 ] || not_ok "expected 16 checks in the container"

echo "$pass passed, $fail failed ($((SECONDS - start))s)"
[ "$fail" -eq 0 ]
