#!/usr/bin/env bash
# bench/report/results_md.sh - writes RESULTS.md to stdout from what
# scripts/bench.sh left in RAW_DIR: results.tsv, meta (the run's settings),
# commands.txt and regression.txt. Also describes this machine.
#
#   bash bench/report/results_md.sh RAW_DIR > RESULTS.md
set -euo pipefail
raw=$1
here=$(dirname "${BASH_SOURCE[0]}")
# shellcheck source=/dev/null
. "$raw/meta"
tsv=$raw/results.tsv

part() { awk -f "$here/common.awk" -f "$here/markdown.awk" -v part="$1" "$tsv"; }

cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
[[ -n $cpu ]] || cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
hyp=$(lscpu 2>/dev/null | sed -n 's/^Hypervisor vendor: *//p' | head -1)
mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
os=$(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-}")
versions() {
    local p
    echo "- C compiler: $(cc --version | head -1)"
    if command -v go >/dev/null 2>&1; then echo "- Go: $(go version)"; fi
    if command -v dpkg-query >/dev/null 2>&1; then
        for p in libboost-fiber-dev libtbb-dev libbenchmark-dev; do
            if v=$(dpkg-query -W -f='${Version}' "$p" 2>/dev/null) && [[ -n $v ]]; then
                echo "- $p $v"
            fi
        done
    fi
}
fmt_secs() { printf '%d min %02d s' $(($1 / 60)) $(($1 % 60)); }
header=$(sed -n '1s/^# weft bench results: //p' "$tsv")
date=$(sed -n 's/.*date=\([^ ]*\).*/\1/p' <<<"$header")
commit=$(sed -n 's/.*commit=\([^ ]*\).*/\1/p' <<<"$header")
# "1 timed run", "3 timed runs".
runs_of() { if [[ $1 -eq 1 ]]; then echo "1 $2"; else echo "$1 ${2}s"; fi; }
sleep_note=''
[[ -z $sleep_exclude ]] || sleep_note=" This quick run leaves out the workloads matching \`$sleep_exclude\`."

cat <<EOF
# weft against its peers

Written by \`scripts/bench.sh$([[ $mode == full ]] || echo " --$mode")\` on $date, from commit $commit, on
a machine with $(nproc) online CPUs ($cpu). Every program checks its
result on every run; a wrong one would have stopped the command.
${note:+
$note
}
## Machine

- CPU: $cpu, $(nproc) online CPUs${hyp:+, a $hyp guest}; memory $mem
- kernel: $(uname -sr)${os:+; $os}
$(versions)
- load average (1, 5, 15 min): $load_start at the start, $load_end at the end
- the command took $(fmt_secs "$elapsed")

## weft and the peers, $workers worker threads

Each runtime ran each workload $runs times, in turns with the others
(weft, go, tbb, ...; weft, go, tbb, ...). A run is one process: 1 warm-up,
then $(runs_of "$inner" "timed run"), and it reports the median of its timed runs (sleepers/N:
$sleep_runs runs of 1 warm-up and $(runs_of "$sleep_inner" "timed run"); each task sleeps 1 s, which
is in every time).$sleep_note A cell is the median over the runs in ms, then (min–max over
the runs), then in bold peer/weft, the ratio of the medians: above 1, weft
is faster.

$(part peers)

Where a peer beats weft's median:

$(part behind)

Peak resident set of the process (MiB, median over the runs; the warm-up
included):

$(part rss)

![peer/weft per workload](ratio.png)

![sleepers: time and memory against N](sleepers.png)

## Scaling with worker threads

fib/30 and skynet/1M with WEFT_BENCH_WORKERS = 1, 2, 4, ... and the CPU
count: $scale_runs rounds; in each, every count in turn and, within a count,
every runtime in turn; a run is 1 warm-up and $(runs_of "$scale_inner" "timed run").
Median ms (min–max); the plot shows throughput, tasks per second (fib/30:
1,346,268 spawns; skynet/1M: 1,111,111 tasks).

$(part scaling)

![throughput against worker threads](scaling.png)

## Google Benchmark suite

\`weft_bench\`, $gb_reps repetitions$([[ -z $gb_filter ]] || echo " (filter \`$gb_filter\`)"), minimum time
$gb_min_time s per repetition: the median over the repetitions, their
min–max and cv (standard deviation / mean). The workers column is the
case's own runtime (– for no runtime).

$(part gbench)

## Regression view

A row (section, workload or case, runtime, workers) moved when its
min–max range and the previous run's do not overlap; a change inside
either run's spread is noise on this machine and is not listed.

\`\`\`
$(cat "$raw/regression.txt")
\`\`\`

## Commands

From the repository's root, \`scripts/bench.sh$([[ $mode == full ]] || echo " --$mode")\` ran:

\`\`\`
$(cat "$raw/commands.txt")
\`\`\`

and then made this report from their output with the scripts in
\`bench/report/\`. The numbers are in \`results.tsv\` next to this file
(bench/README.md describes its columns).
EOF
