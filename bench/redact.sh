#!/usr/bin/env bash
# Redactor benchmark: builds a synthetic CI log (256 MiB by default) and 1000 secret values, runs bench_redact with
# 10, 100 and 1000 values (each with its encoded forms) plus the built-in patterns, runs the `perl -pe` baseline
# (one alternation of the quoted values, no encoded forms) on the same input in the same run, and writes a markdown
# table to docs/benchmarks-redact.md.
#
#   bench/redact.sh [BUILD_DIR]          env: SIZE_MIB (256), WORK (a temp dir), OUT (docs/benchmarks-redact.md)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build}
size_mib=${SIZE_MIB:-256}
work=${WORK:-$(mktemp -d)}
out=${OUT:-$src/docs/benchmarks-redact.md}
bench=$build/bench/bench_redact
[ -x "$bench" ] || { echo "build bench_redact first: cmake --build $build --target bench_redact" >&2; exit 1; }

log=$work/ci.log
values=$work/values.txt
if [ ! -s "$log" ] || [ "$(stat -c %s "$log")" -ne $((size_mib * 1024 * 1024)) ]; then
  python3 - "$log" "$values" "$size_mib" <<'EOF'
import random, sys, base64
log, values, size_mib = sys.argv[1], sys.argv[2], int(sys.argv[3])
rnd = random.Random(42)
alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
vals = ["".join(rnd.choice(alnum) for _ in range(rnd.randint(20, 40))) for _ in range(1000)]
open(values, "w").write("\n".join(vals) + "\n")
words = ("build test compile link install download fetch resolve module package done ok warning error step "
         "running cache hit miss layer image container volume network deploy apply plan terraform provider "
         "resource created updated destroyed artifact upload checksum sha256 digest").split()
def line(i):
    k = rnd.random()
    ts = "2026-08-%02dT%02d:%02d:%02d.%03dZ " % (1 + i % 28, i % 24, i % 60, (i * 7) % 60, i % 1000)
    if k < 0.50:
        return ts + " ".join(rnd.choice(words) for _ in range(rnd.randint(4, 14)))
    if k < 0.65:
        return ts + "gcc -O2 -Wall -c src/%s/%s.c -o build/%s.o" % (rnd.choice(words), rnd.choice(words), rnd.choice(words))
    if k < 0.72:
        return ts + "Downloading https://registry.example.com/%s/%s-%d.%d.tgz (%d kB)" % (
            rnd.choice(words), rnd.choice(words), rnd.randint(0, 9), rnd.randint(0, 99), rnd.randint(1, 9999))
    if k < 0.78:
        return ts + "sha256:" + "".join(rnd.choice("0123456789abcdef") for _ in range(64))
    if k < 0.82:
        return base64.b64encode(bytes(rnd.getrandbits(8) for _ in range(57))).decode()
    if k < 0.84:
        return ts + "export TOKEN_NAME=example; curl -s -H 'Accept: json' https://api.example.com/v1/%s?page=%d" % (
            rnd.choice(words), rnd.randint(1, 99))
    if k < 0.8405:  # a secret (from the first 10 values, so every run masks some) or its base64
        v = vals[rnd.randrange(10)]
        return ts + ("password is %s" % v if rnd.random() < 0.5 else "auth " + base64.b64encode(("user:" + v).encode()).decode())
    return ts + "[%d/%d] %s" % (rnd.randint(1, 999), 1000, " ".join(rnd.choice(words) for _ in range(6)))
block = "\n".join(line(i) for i in range(60000)).encode() + b"\n"
target = size_mib * 1024 * 1024
with open(log, "wb") as f:
    n = 0
    while n < target:
        b = block[: target - n]
        f.write(b)
        n += len(b)
EOF
fi

mb=$(python3 -c "print($size_mib*1024*1024/1e6)")
rows=()
printf '%-6s %-22s %10s %10s %12s %s\n' values tool MB/s cpu_MB/s peak_RSS_MiB notes
for n in 10 100 1000; do
  res=$("$bench" "$log" "$values" "$n")
  mbps=$(sed -n 's/.* MBps=\([0-9]*\).*/\1/p' <<<"$res")
  cmbps=$(sed -n 's/.*cpu_MBps=\([0-9]*\).*/\1/p' <<<"$res")
  rss=$(sed -n 's/.*peak_rss_kib=\([0-9]*\).*/\1/p' <<<"$res")
  lits=$(sed -n 's/.*literals=\([0-9]*\).*/\1/p' <<<"$res")
  build_s=$(sed -n 's/.*build_s=\([0-9.]*\).*/\1/p' <<<"$res")
  masks=$(sed -n 's/.*masks=\([0-9]*\).*/\1/p' <<<"$res")
  rss_mib=$(python3 -c "print(round($rss/1024,1))")
  printf '%-6s %-22s %10s %10s %12s %s\n' "$n" berth "$mbps" "$cmbps" "$rss_mib" \
    "$lits strings, build ${build_s}s, $masks masks"

  # perl baseline: one alternation of the quoted values (raw values only), line by line.
  head -n "$n" "$values" >"$work/v$n.txt"
  t0=$(date +%s.%N)
  VALS=$work/v$n.txt /usr/bin/time -f '%M %U %S' -o "$work/perl.rss" perl -pe \
    'BEGIN { open my $f, "<", $ENV{VALS} or die; chomp(my @v = <$f>); my $a = join "|", map { quotemeta } @v; $re = qr/$a/ } s/$re/***/g' \
    <"$log" >/dev/null
  t1=$(date +%s.%N)
  read -r prss pu ps <"$work/perl.rss"
  pmbps=$(python3 -c "print(round($mb/($t1-$t0)))")
  pcmbps=$(python3 -c "print(round($mb/max($pu+$ps,0.01)))")
  prss_mib=$(python3 -c "print(round($prss/1024,1))")
  printf '%-6s %-22s %10s %10s %12s\n' "$n" "perl -pe alternation" "$pmbps" "$pcmbps" "$prss_mib"
  rows+=("| $n | $mbps | $cmbps | $rss_mib | $lits | $build_s | $pmbps | $pcmbps | $prss_mib |")
done

cpu=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)
{
  echo "## Redactor (bench/redact.sh)"
  echo
  echo "Input: a synthetic CI log of $size_mib MiB (timestamps, compiler lines, URLs, hashes, base64 lines, rare"
  echo "secrets and base64(user:secret)), fed in 32 KiB chunks to one redactor on one core. Values: random 20-40"
  echo "character strings; berth registers each with its encoded forms (base64 x3 alignments + padded tails,"
  echo "URL, JSON), and the built-in patterns are on. perl: \`perl -pe 's/\$re/***/g'\` with one alternation"
  echo "of the quoted raw values, run on the same file in the same run. MB = 10^6 bytes. Peak RSS is the whole"
  echo "process (getrusage / \`/usr/bin/time\`). Machine: $cpu, $(nproc) cores. $(date -u +%Y-%m-%d)."
  echo
  echo "Load average during the run: $(cut -d' ' -f1-3 /proc/loadavg) (MB/s is wall clock; CPU MB/s divides by"
  echo "user+sys time, steadier when the machine is shared)."
  echo
  echo "| values | berth MB/s | berth CPU MB/s | berth peak RSS MiB | berth strings | matcher build s | perl MB/s | perl CPU MB/s | perl peak RSS MiB |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Reference numbers from the issue (same kind of input, 10 / 100 / 1000 values, without encoded forms):"
  echo "Buildkite's streaming replacer ~310 / ~105 / ~27 MB/s, GitLab Runner's masker ~470 / ~64 / ~6 MB/s,"
  echo "the perl line ~220 / ~125 / ~135 MB/s; memory copy ~10 GB/s. Targets: >= 1 GB/s with 100 values,"
  echo ">= 500 MB/s with 1000 values, memory independent of input size."
} >"$out"
echo "wrote $out"
