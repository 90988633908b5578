# Sourced by the benchmarks that run PostgreSQL, berth and their clients on the same cores: puts this shell (and so
# everything it starts) in a CPU cgroup of its own, as systemd puts a service, so the kernel's autogroup does not
# apply. With autogroup (kernel.sched_autogroup_enabled = 1, tasks in the root cgroup), every session is a scheduling
# group of its own, and every PostgreSQL backend calls setsid(): 8 backends are 8 groups beside the one of berth and
# its clients, and a backend woken on the other CPU waited up to half a second for it (docs/benchmarks-store.md).
#   bench_cpu_group        once, near the top; says in one line what it did (CPU_GROUP=0: not done, to compare)
#   bench_cpu_group_end    at exit, after the processes it started have ended: the group removed if this shell made it
BENCH_CPU_GROUP=
bench_cpu_group() {
  local ag
  ag=$(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null || echo 0)
  if [ "$ag" != 1 ] || [ "${CPU_GROUP:-1}" = 0 ]; then
    return 0
  fi
  # already in a group of its own (bench/run.sh made it, or a service's): autogroup does not apply
  if grep -Eq '^[0-9]+:([^:]*,)?cpu(,[^:]*)?:/.+' /proc/self/cgroup \
    || { grep -Eq '^0::/.+' /proc/self/cgroup && grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null; }; then
    return 0
  fi
  local dir=
  if [ -w /sys/fs/cgroup/cpu/cgroup.procs ]; then # cgroup v1, the cpu controller mounted on its own
    dir=/sys/fs/cgroup/cpu/berth-bench-$$
  elif grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null && [ -w /sys/fs/cgroup/cgroup.procs ]; then
    dir=/sys/fs/cgroup/berth-bench-$$ # cgroup v2 with the cpu controller on for children (never turned on here)
  fi
  if [ -n "$dir" ] && mkdir -p "$dir" 2>/dev/null && echo $$ >"$dir/cgroup.procs" 2>/dev/null; then
    BENCH_CPU_GROUP=$dir
    echo "bench: running in the CPU cgroup $dir (the kernel's autogroup would make each PostgreSQL backend a scheduling group of its own)" >&2
  else
    echo "bench: kernel autogroup is on and no CPU cgroup could be made (not root?): each PostgreSQL backend is a scheduling group of its own, and tail latencies show it" >&2
  fi
}
bench_cpu_group_end() {
  [ -n "$BENCH_CPU_GROUP" ] || return 0
  local root=${BENCH_CPU_GROUP%/*}
  echo $$ >"$root/cgroup.procs" 2>/dev/null || true
  rmdir "$BENCH_CPU_GROUP" 2>/dev/null || true
  BENCH_CPU_GROUP=
}
