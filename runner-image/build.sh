#!/usr/bin/env bash
# Build berth's images offline, i.e. without any container registry:
#   berth/runner:latest   Debian bookworm minbase (mmdebstrap from the Debian mirror) + packages.txt, user berth
#                         (uid/gid 1983) as USER, /mnt/workspace owned by it, the host's terraform when present.
#   berth/busybox:latest  busybox-static with /bin/sh and its applets, for fast tests.
#   berth/debian-clean:latest  (target `clean`, not part of `all`) Debian bookworm minbase + $BERTH_CLEAN_PACKAGES
#                         and nothing else, man pages kept: a clean machine to install berth's .deb on
#                         (tests/integration/test_package.sh).
#
#   runner-image/build.sh [--force] [all|runner|busybox|clean]
#
# An image whose label berth.inputs-hash equals the hash of its inputs (this script, the Dockerfile, packages.txt,
# the terraform or busybox binary) is up to date and not rebuilt; --force rebuilds anyway. Needs root (mmdebstrap,
# file ownership) and a Docker daemon (ci/start-docker.sh). Environment:
#   BERTH_DEBIAN_MIRROR, BERTH_DEBIAN_SECURITY_MIRROR  mirror URLs (default: the host's apt sources, else
#                                                      deb.debian.org); they end up in the image's sources.list
#   BERTH_IMAGE_OUT                                    work directory (default runner-image/.out, gitignored)
#   BERTH_TERRAFORM                                    terraform binary to copy in (default /usr/local/bin/terraform)
#   BERTH_RUNNER_TAG, BERTH_BUSYBOX_TAG                image names (default berth/runner:latest, berth/busybox:latest)
#   BERTH_CLEAN_TAG, BERTH_CLEAN_PACKAGES              the clean image's name (default berth/debian-clean:latest) and
#                                                      the packages it gets (comma-separated; part of its hash)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${BERTH_IMAGE_OUT:-$here/.out}
RUNNER_TAG=${BERTH_RUNNER_TAG:-berth/runner:latest}
BUSYBOX_TAG=${BERTH_BUSYBOX_TAG:-berth/busybox:latest}
CLEAN_TAG=${BERTH_CLEAN_TAG:-berth/debian-clean:latest}
CLEAN_PACKAGES=${BERTH_CLEAN_PACKAGES:-}
HASH_LABEL=berth.inputs-hash
SUITE=bookworm
BERTH_UID=1983
TERRAFORM=${BERTH_TERRAFORM:-/usr/local/bin/terraform}
BUSYBOX=/bin/busybox

say() { echo "build-images: $*"; }
die() {
  echo "build-images: $*" >&2
  exit 1
}

force=0
what=all
for arg in "$@"; do
  case "$arg" in
  --force) force=1 ;;
  all | runner | busybox | clean) what=$arg ;;
  -h | --help)
    awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"
    exit 0
    ;;
  *) die "unknown argument '$arg' (usage: build.sh [--force] [all|runner|busybox|clean])" ;;
  esac
done

command -v docker >/dev/null 2>&1 || die "no docker CLI in PATH (run ci/install-deps.sh)"
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 ||
  die "no Docker daemon answers at ${DOCKER_HOST:-unix:///var/run/docker.sock} (run ci/start-docker.sh)"

mkdir -p "$out"
# One build at a time per work directory (parallel CI jobs on one host share it).
exec 9>"$out/.lock"
flock 9

sha() { sha256sum "$@" | awk '{print $1}'; }

# The sha256 of a large binary, cached under $out by path, size, mtime and inode so a no-op run stays fast.
cached_sha() {
  local file=$1 key cache line
  key=$(stat -L -c '%s %Y %i' "$file")
  cache=$out/sha-cache.$(printf '%s' "$file" | sha256sum | cut -c1-16)
  if [ -f "$cache" ]; then
    line=$(cat "$cache")
    if [ "${line% *}" = "$key" ]; then
      echo "${line##* }"
      return
    fi
  fi
  line="$key $(sha "$file")"
  echo "$line" >"$cache"
  echo "${line##* }"
}

# current_hash TAG: the inputs hash the existing image was built from ("" when the image or label is missing).
current_hash() {
  local h
  h=$(docker image inspect --format "{{index .Config.Labels \"$HASH_LABEL\"}}" "$1" 2>/dev/null || true)
  [ "$h" = "<no value>" ] && h=""
  echo "$h"
}

# docker_build TAG CONTEXT DOCKERFILE HASH: build CONTEXT (a directory holding rootfs.tar) without network access,
# then drop the image TAG named before, when nothing uses it.
docker_build() {
  local tag=$1 ctx=$2 dockerfile=$3 hash=$4 old
  old=$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
  cp "$dockerfile" "$ctx/Dockerfile"
  # The classic builder: dockerd 20.10 has it everywhere, and no buildx plugin is needed.
  if ! DOCKER_BUILDKIT=0 docker build --network none --label "$HASH_LABEL=$hash" --tag "$tag" "$ctx" >"$ctx.log" 2>&1; then
    tail -n 20 "$ctx.log" >&2
    die "docker build failed for $tag (log: $ctx.log)"
  fi
  if [ -n "$old" ] && [ "$old" != "$(docker image inspect --format '{{.Id}}' "$tag")" ]; then
    docker image rm "$old" >/dev/null 2>&1 || true
  fi
}

# Mirror URLs from the host's apt sources (deb822 .sources and one-line .list files).
host_uris() {
  {
    grep -hs '^[[:space:]]*URIs:' /etc/apt/sources.list.d/*.sources | sed 's/^[[:space:]]*URIs://' | tr -s ' \t' '\n'
    grep -hs '^[[:space:]]*deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
      sed -E 's/^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?//' | awk '{print $1}'
  } | grep -E '^(https?|file)://' || true
}

# Sets mirror and security: the Debian mirrors the images are made from (and whose URLs they keep in sources.list).
pick_mirrors() {
  mirror=${BERTH_DEBIAN_MIRROR:-$(host_uris | grep -E '/debian/?$' | head -n 1)}
  mirror=${mirror:-http://deb.debian.org/debian}
  security=${BERTH_DEBIAN_SECURITY_MIRROR:-$(host_uris | grep -E '/debian-security/?$' | head -n 1)}
  security=${security:-http://deb.debian.org/debian-security}
  case "$mirror $security" in
  *://*@*) die "a mirror URL carries credentials; they would be baked into the image (set BERTH_DEBIAN_MIRROR)" ;;
  esac
}

build_runner() {
  local tf_sha=none hash have start mirror security pkgs ctx
  [ -x "$TERRAFORM" ] && tf_sha=$(cached_sha "$TERRAFORM")
  hash=$({
    echo "runner $SUITE uid=$BERTH_UID terraform=$tf_sha"
    sha "$here/build.sh" "$here/Dockerfile" "$here/packages.txt"
  } | sha)
  have=$(current_hash "$RUNNER_TAG")
  if [ "$force" -eq 0 ] && [ "$have" = "$hash" ]; then
    say "$RUNNER_TAG up to date (inputs ${hash:0:12})"
    return
  fi
  command -v mmdebstrap >/dev/null 2>&1 || die "mmdebstrap not found (run ci/install-deps.sh)"
  [ "$(id -u)" -eq 0 ] || die "building $RUNNER_TAG needs root (mmdebstrap and file ownership)"

  pick_mirrors
  pkgs=$(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$here/packages.txt" | grep -v '^$' | paste -sd, -)

  start=$SECONDS
  ctx=$out/runner
  rm -rf "$ctx"
  mkdir -p "$ctx"
  if [ -x "$TERRAFORM" ]; then
    say "building $RUNNER_TAG (terraform ${tf_sha:0:12} from $TERRAFORM; packages: $pkgs; mirror: $mirror)"
  else
    say "building $RUNNER_TAG (no $TERRAFORM on this host: terraform not included; packages: $pkgs; mirror: $mirror)"
  fi
  # Hooks run on the host with the rootfs as $1. Nothing from the host's environment or home is copied in: the
  # only host file that enters is the terraform binary. The apt caches and lists are removed by mmdebstrap.
  # shellcheck disable=SC2016
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin TERRAFORM="$TERRAFORM" BERTH_UID="$BERTH_UID" \
    mmdebstrap --quiet --variant=minbase --include="$pkgs" \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --customize-hook='chroot "$1" groupadd --gid "$BERTH_UID" berth' \
    --customize-hook='chroot "$1" useradd --uid "$BERTH_UID" --gid "$BERTH_UID" --create-home --home-dir /home/berth --shell /bin/bash berth' \
    --customize-hook='install -d -o "$BERTH_UID" -g "$BERTH_UID" -m 0755 "$1/mnt/workspace"' \
    --customize-hook='if [ -x "$TERRAFORM" ]; then install -m 0755 "$TERRAFORM" "$1/usr/local/bin/terraform"; fi' \
    --customize-hook='rm -f "$1"/var/log/*.log "$1"/var/log/apt/*.log "$1"/var/cache/debconf/*-old' \
    "$SUITE" "$ctx/rootfs.tar" \
    "deb $mirror $SUITE main" "deb $mirror $SUITE-updates main" "deb $security $SUITE-security main" ||
    die "mmdebstrap failed for $RUNNER_TAG (is $mirror reachable?)"
  say "rootfs made in $((SECONDS - start))s ($(du -m "$ctx/rootfs.tar" | cut -f1) MiB)"
  docker_build "$RUNNER_TAG" "$ctx" "$here/Dockerfile" "$hash"
  rm -rf "$ctx"
  say "built $RUNNER_TAG in $((SECONDS - start))s (inputs ${hash:0:12})"
}

build_busybox() {
  local bb_sha hash have start ctx root applet
  [ -x "$BUSYBOX" ] || die "$BUSYBOX not found (install busybox-static: ci/install-deps.sh)"
  bb_sha=$(cached_sha "$BUSYBOX")
  hash=$({
    echo "busybox busybox=$bb_sha uid=$BERTH_UID"
    sha "$here/build.sh" "$here/busybox.Dockerfile"
  } | sha)
  have=$(current_hash "$BUSYBOX_TAG")
  if [ "$force" -eq 0 ] && [ "$have" = "$hash" ]; then
    say "$BUSYBOX_TAG up to date (inputs ${hash:0:12})"
    return
  fi
  [ "$(id -u)" -eq 0 ] || die "building $BUSYBOX_TAG needs root (file ownership)"
  "$BUSYBOX" --list | grep -qx sh || die "$BUSYBOX has no sh applet"

  start=$SECONDS
  ctx=$out/busybox
  root=$ctx/root
  rm -rf "$ctx"
  mkdir -p "$root"/{bin,etc,dev,proc,sys,tmp,root,usr,mnt/workspace,home/berth}
  install -m 0755 "$BUSYBOX" "$root/bin/busybox"
  for applet in $("$BUSYBOX" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
  done
  ln -s ../bin "$root/usr/bin"
  ln -s ../bin "$root/usr/sbin"
  ln -s bin "$root/sbin"
  printf 'root:x:0:0:root:/root:/bin/sh\nberth:x:%s:%s:berth:/home/berth:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
    "$BERTH_UID" "$BERTH_UID" >"$root/etc/passwd"
  printf 'root:x:0:\nberth:x:%s:\nnogroup:x:65534:\n' "$BERTH_UID" >"$root/etc/group"
  chmod 1777 "$root/tmp"
  chmod 0700 "$root/root"
  chown "$BERTH_UID:$BERTH_UID" "$root/home/berth"
  tar --create --file "$ctx/rootfs.tar" --directory "$root" --numeric-owner --sort=name --mtime=@0 .
  docker_build "$BUSYBOX_TAG" "$ctx" "$here/busybox.Dockerfile" "$hash"
  rm -rf "$ctx"
  say "built $BUSYBOX_TAG in $((SECONDS - start))s (inputs ${hash:0:12})"
}

# A clean Debian: minbase and the packages asked for, nothing of the host, man pages and docs kept (a package
# installed on it is checked as a user would see it). No user is added: the package under test makes its own.
build_clean() {
  local hash have start mirror security ctx
  hash=$({
    echo "clean $SUITE packages=$CLEAN_PACKAGES"
    sha "$here/build.sh" "$here/clean.Dockerfile"
  } | sha)
  have=$(current_hash "$CLEAN_TAG")
  if [ "$force" -eq 0 ] && [ "$have" = "$hash" ]; then
    say "$CLEAN_TAG up to date (inputs ${hash:0:12})"
    return
  fi
  command -v mmdebstrap >/dev/null 2>&1 || die "mmdebstrap not found (run ci/install-deps.sh)"
  [ "$(id -u)" -eq 0 ] || die "building $CLEAN_TAG needs root (mmdebstrap and file ownership)"
  pick_mirrors
  start=$SECONDS
  ctx=$out/clean
  rm -rf "$ctx"
  mkdir -p "$ctx"
  say "building $CLEAN_TAG (packages: ${CLEAN_PACKAGES:-none}; mirror: $mirror)"
  # shellcheck disable=SC2016
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    mmdebstrap --quiet --variant=minbase ${CLEAN_PACKAGES:+--include="$CLEAN_PACKAGES"} \
    --customize-hook='rm -f "$1"/var/log/*.log "$1"/var/log/apt/*.log "$1"/var/cache/debconf/*-old' \
    "$SUITE" "$ctx/rootfs.tar" \
    "deb $mirror $SUITE main" "deb $mirror $SUITE-updates main" "deb $security $SUITE-security main" ||
    die "mmdebstrap failed for $CLEAN_TAG (is $mirror reachable?)"
  docker_build "$CLEAN_TAG" "$ctx" "$here/clean.Dockerfile" "$hash"
  rm -rf "$ctx"
  say "built $CLEAN_TAG in $((SECONDS - start))s (inputs ${hash:0:12})"
}

case "$what" in
all)
  build_busybox
  build_runner
  ;;
runner) build_runner ;;
busybox) build_busybox ;;
clean) build_clean ;;
esac
