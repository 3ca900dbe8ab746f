#!/usr/bin/env bash
# scripts/bench.sh - weft against its peers in one command. Installs the
# peers' packages, builds the release preset, runs weft's Google Benchmark
# suite, then every peer program in turns (weft, go, tbb, ...; weft, go,
# tbb, ...), and writes the report: RESULTS.md, results.tsv and PNG plots.
#
#   scripts/bench.sh [--quick] [--out DIR] [--baseline FILE] [--note TEXT]
#
#   (no option)     the full run: about 10-15 min on 2 CPUs; writes
#                   bench/results/ and refreshes the README's results block
#   --quick         a look in about 3 min: 3 runs instead of 5 (sleepers:
#                   2, scaling: 1), 1 timed run per program run instead
#                   of 3, no sleepers/1M, 3 repetitions of the Google
#                   Benchmark cases with a shorter minimum time and without
#                   the cases of a million fibers; writes
#                   bench/results/tmp/quick/ (not committed) and leaves the
#                   README alone
#   --out DIR       write the report there instead
#   --baseline FILE the results.tsv to compare with (default: the committed
#                   bench/results/results.tsv, else the one being replaced)
#   --note TEXT     a sentence for the report, e.g. on the machine's load
#
# WEFT_BENCH_WORKERS (default 2) sets the worker threads of every runtime in
# the main table; the scaling runs set it to 1, 2, 4, ... and the CPU count.
# Any wrong result, crash or failed step stops the command with a message
# and a non-zero status, and no report is written. Raw data, logs and plot
# data go to bench/results/tmp/raw-<full|quick>/. bench/README.md describes
# the report and the regression rule.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=full
out=''
baseline=''
note=''
usage() {
    sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
while [[ $# -gt 0 ]]; do
    case $1 in
    --quick) mode=quick ;;
    --out) [[ $# -ge 2 ]] || usage; out=$2; shift ;;
    --baseline) [[ $# -ge 2 ]] || usage; baseline=$2; shift ;;
    --note) [[ $# -ge 2 ]] || usage; note=$2; shift ;;
    *) usage ;;
    esac
    shift
done

# What each mode runs (bench/README.md, "One command").
if [[ $mode == full ]]; then
    runs=5 inner=3 sleep_runs=5 sleep_inner=1 sleep_exclude=''
    gb_reps=5 gb_min_time=0.2 gb_filter=''
    scale_runs=5 scale_inner=1
    out=${out:-bench/results}
else
    runs=3 inner=1 sleep_runs=2 sleep_inner=1 sleep_exclude='^sleepers/1M$'
    gb_reps=3 gb_min_time=0.05 gb_filter='-/1000000/'
    scale_runs=1 scale_inner=1
    out=${out:-bench/results/tmp/quick}
fi
scale_filter='^(fib|skynet)/'
build=build/release
workers=${WEFT_BENCH_WORKERS:-2}
raw=bench/results/tmp/raw-$mode
report=bench/report
t_start=$(date +%s)
date_start=$(date -u +%Y-%m-%dT%H:%MZ)
# The commit measured; -dirty when the sources differ from it (the report
# and the README's results block aside).
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git status --porcelain -- . ':(exclude)bench/results' ':(exclude)README.md' 2>/dev/null) ]]; then
    commit+=-dirty
fi

fail() {
    printf '\nscripts/bench.sh: FAILED: %s\nNo report written; see the output above and %s/.\n' "$1" "$raw" >&2
    exit 1
}

# Prints a command as one would type it, quoting only what needs it.
show() {
    local a s=''
    for a in "$@"; do
        if [[ $a =~ ^[][A-Za-z0-9_./=:,+@%-]+$ ]]; then
            s+="$a "
        else
            s+="'${a//\'/\'\\\'\'}' "
        fi
    done
    printf '%s\n' "${s% }"
}

# Runs a command (leading VAR=value words are set in its environment),
# records it for the report and stops everything if it fails.
run() {
    show "$@" >>"$raw/commands.txt"
    printf '\n+ %s\n' "$(show "$@")" >&2
    if [[ $1 =~ ^[A-Z_]+= ]]; then
        env "$@" || fail "$(show "$@")"
    else
        "$@" || fail "$(show "$@")"
    fi
}

# The baseline for the regression view, read before anything is replaced.
case $(realpath -m "$out") in
"$(realpath -m "$raw")"*) echo "scripts/bench.sh: --out must not be inside $raw" >&2; exit 2 ;;
esac
rm -rf "$raw"
mkdir -p "$raw" "$out"
: >"$raw/commands.txt"
if [[ -n $baseline ]]; then
    cp -- "$baseline" "$raw/baseline.tsv"
    baseline_from=$baseline
elif git show HEAD:bench/results/results.tsv >"$raw/baseline.tsv" 2>/dev/null; then
    baseline_from="bench/results/results.tsv as committed in $(git rev-parse --short HEAD)"
elif [[ -f $out/results.tsv ]]; then
    cp -- "$out/results.tsv" "$raw/baseline.tsv"
    baseline_from="$out/results.tsv before this run"
else
    rm -f "$raw/baseline.tsv"
    baseline_from=''
fi
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

echo "=== dependencies and build" >&2
run scripts/install-deps.sh --bench
command -v gnuplot >/dev/null 2>&1 || fail "no gnuplot after scripts/install-deps.sh --bench"
run cmake --preset release
run cmake --build --preset release -j"$(nproc)"

echo "=== Google Benchmark suite ($gb_reps repetitions)" >&2
gb=("$build/bench/weft_bench" --benchmark_repetitions="$gb_reps"
    --benchmark_min_time="$gb_min_time" --benchmark_display_aggregates_only=true
    --benchmark_out="$raw/gbench.json" --benchmark_out_format=json)
[[ -z $gb_filter ]] || gb+=(--benchmark_filter="$gb_filter")
run WEFT_BENCH_WORKERS="$workers" "${gb[@]}"

echo "=== peers, $workers workers ($runs runs each, in turns)" >&2
run WEFT_BENCH_WORKERS="$workers" bash bench/run_peers.sh -n "$runs" -k "$inner" -x '^sleepers/' \
    -o "$raw/peers-main.txt" "$build"
sl=(bash bench/run_peers.sh -n "$sleep_runs" -k "$sleep_inner" -w '^sleepers/')
[[ -z $sleep_exclude ]] || sl+=(-x "$sleep_exclude")
run WEFT_BENCH_WORKERS="$workers" "${sl[@]}" -o "$raw/peers-sleepers.txt" "$build"

# 1, 2, 4, ... up to the online CPUs, and the CPU count itself.
ncpu=$(nproc)
scale_workers=()
for ((w = 1; w <= ncpu; w *= 2)); do scale_workers+=("$w"); done
[[ ${scale_workers[-1]} -eq $ncpu ]] || scale_workers+=("$ncpu")
# Round by round, every worker count in turn within a round, as run_peers.sh
# alternates the runtimes: a change in the machine's load between the
# counts would otherwise pass for a change in speed-up.
echo "=== scaling: ${scale_workers[*]} workers, $scale_runs rounds (tables in $raw/scaling.log)" >&2
: >"$raw/scaling.log"
for ((r = 1; r <= scale_runs; r++)); do
    for w in "${scale_workers[@]}"; do
        run WEFT_BENCH_WORKERS="$w" bash bench/run_peers.sh -n 1 -k "$scale_inner" \
            -w "$scale_filter" -o "$raw/scaling-$w-$r.txt" "$build" >>"$raw/scaling.log"
    done
done
for w in "${scale_workers[@]}"; do
    cat "$raw/scaling-$w-"*.txt >"$raw/scaling-$w.txt"
done

echo "=== report" >&2
{
    printf '# weft bench results: mode=%s date=%s commit=%s runtimes=%s\n' "$mode" \
        "$date_start" "$commit" "$(bash bench/run_peers.sh -l "$build" 2>/dev/null | paste -sd,)"
    printf 'section\tworkload\truntime\tworkers\truns\tmedian\tmin\tmax\tunit\trss_mib\tcv\n'
    awk -f "$report/common.awk" -f "$report/peers.awk" -v section=peers -v workers="$workers" \
        "$raw/peers-main.txt" "$raw/peers-sleepers.txt"
    for w in "${scale_workers[@]}"; do
        awk -f "$report/common.awk" -f "$report/peers.awk" -v section=scaling -v workers="$w" \
            "$raw/scaling-$w.txt"
    done
    awk -f "$report/common.awk" -f "$report/gbench.awk" "$raw/gbench.json"
} >"$raw/results.tsv"

if [[ -n $baseline_from ]]; then
    {
        echo "Compared with $baseline_from ($(sed -n '1s/^# weft bench results: //p' "$raw/baseline.tsv")):"
        awk -f "$report/common.awk" -f "$report/compare.awk" "$raw/baseline.tsv" "$raw/results.tsv"
    } >"$raw/regression.txt"
else
    echo "No previous results to compare with." >"$raw/regression.txt"
fi

mkdir -p "$raw/plot"
awk -f "$report/common.awk" -f "$report/plotdata.awk" -v dir="$raw/plot" "$raw/results.tsv"
extra=''
[[ $mode == full ]] || extra=" [$mode]"
for p in ratio sleepers scaling; do
    gnuplot -e "dir='$raw/plot'; out='$raw/$p.png'; title_extra='$extra'" "$report/$p.gp" ||
        fail "gnuplot $report/$p.gp"
done

# Everything measured and drawn: only now replace the previous report.
cp "$raw/results.tsv" "$raw/ratio.png" "$raw/sleepers.png" "$raw/scaling.png" "$out/"
{
    printf 'mode=%q\nruns=%q\ninner=%q\nsleep_runs=%q\nsleep_inner=%q\nsleep_exclude=%q\n' \
        "$mode" "$runs" "$inner" "$sleep_runs" "$sleep_inner" "$sleep_exclude"
    printf 'gb_reps=%q\ngb_min_time=%q\ngb_filter=%q\nscale_runs=%q\nscale_inner=%q\n' \
        "$gb_reps" "$gb_min_time" "$gb_filter" "$scale_runs" "$scale_inner"
    printf 'workers=%q\nload_start=%q\nload_end=%q\nnote=%q\nelapsed=%q\n' "$workers" \
        "$load_start" "$(cut -d' ' -f1-3 /proc/loadavg)" "$note" "$(($(date +%s) - t_start))"
} >"$raw/meta"
bash "$report/results_md.sh" "$raw" >"$out/RESULTS.md"
if [[ $out == bench/results ]]; then
    bash "$report/readme.sh" "$raw" README.md
fi

echo >&2
cat "$raw/regression.txt" >&2
printf '\nreport: %s/RESULTS.md (%d s)\n' "$out" "$(($(date +%s) - t_start))" >&2
