#!/usr/bin/env bash
# bench/run_peers.sh - run weft and its peers on the same workloads, in
# turns, and print median times and ratios.
#
#   bash bench/run_peers.sh [-n RUNS] [-k INNER] [-w REGEX] [-x REGEX]
#                           [-o FILE] [-l] [BUILD_DIR]
#
#   BUILD_DIR  a configured and built tree (default: build/release); the
#              peers are looked for in BUILD_DIR/bench/peers/.
#   -n RUNS    runs of each program per workload (default 5)
#   -k INNER   timed runs inside each program; it reports their median
#              (default 5)
#   -w REGEX   only the workloads whose name matches (grep -E), for
#              example -w '^sleepers' or -w '^(fib|skynet)'
#   -x REGEX   leave out the workloads whose name matches (after -w)
#   -o FILE    write the raw lines to FILE (default
#              BUILD_DIR/bench/peers/last_run.txt)
#   -l         print the runtimes' names in report order, one a line, and
#              run nothing
#
# Nothing is built here except the Go peer, and only when `go` is on PATH:
# CMake builds the rest, each only if its runtime is installed. Programs are
# run round-robin (weft, go, tbb, ...; weft, go, tbb, ...) so that a noisy
# neighbour or a frequency change hits every runtime alike. Every program
# checks its result and the run fails loudly if one is wrong.
#
# Output: one row per workload and runtime with the median over RUNS of the
# programs' reported medians, the min-max of those, peer/weft, the ratio
# of medians (above 1: weft is faster), and the median over RUNS of the
# programs' peak RSS (a whole process: runtime, threads, warm-up run
# included). Raw lines are kept in BUILD_DIR/bench/peers/last_run.txt, or
# in the -o FILE.
# WEFT_BENCH_WORKERS (default 2) sets the worker threads of every runtime.
#
# The sleepers/* workloads sleep 1 s per run, and a million sleepers take
# several seconds more on some runtimes: with the defaults they take most
# of the script's time. `-w '^sleepers' -n 3 -k 1` is a quicker look.

set -euo pipefail

runs=5
inner=5
filter=''
exclude=''
raw=''
list_only=0
usage() {
    sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
while getopts 'n:k:w:x:o:lh' opt; do
    case $opt in
    n) runs=$OPTARG ;;
    k) inner=$OPTARG ;;
    w) filter=$OPTARG ;;
    x) exclude=$OPTARG ;;
    o) raw=$OPTARG ;;
    l) list_only=1 ;;
    *) usage ;;
    esac
done
shift $((OPTIND - 1))
[[ $# -le 1 ]] || usage
[[ $runs =~ ^[1-9][0-9]*$ && $inner =~ ^[1-9][0-9]*$ ]] || usage

src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${1:-build/release}
peers=$build/bench/peers
if [[ ! -x $peers/weft_peer ]]; then
    echo "run_peers.sh: no $peers/weft_peer; build first:" >&2
    echo "  cmake --preset release && cmake --build --preset release" >&2
    exit 1
fi

# The Go peer is the only one built here (CMake does not drive `go`).
if command -v go >/dev/null 2>&1; then
    if [[ -z ${GOCACHE:-} && ( -z ${HOME:-} || ! -w ${HOME:-/nonexistent} ) ]]; then
        export GOCACHE=$peers/go-cache
    fi
    peers_abs=$(cd "$peers" && pwd)
    if ! (cd "$src/peers/go" && go build -o "$peers_abs/go_peer" .); then
        echo "run_peers.sh: go build failed; skipping Go" >&2
        rm -f "$peers/go_peer"
    fi
else
    echo "run_peers.sh: go not found; skipping Go" >&2
fi

# Runtime name and program, in report order; weft first.
names=(weft go tbb openmp openmp-static boost.fiber pthread)
progs=(weft_peer go_peer tbb_peer omp_peer omp_static_peer fiber_peer pthread_peer)
if ((list_only)); then printf '%s\n' "${names[@]}"; exit 0; fi
avail=()
for i in "${!names[@]}"; do
    if [[ -x $peers/${progs[i]} ]]; then
        avail+=("$i")
    else
        echo "run_peers.sh: ${names[i]}: ${progs[i]} not built; skipping" >&2
    fi
done

mapfile -t workloads < <("$peers/weft_peer" --list)
if [[ -n $filter ]]; then
    mapfile -t workloads < <(printf '%s\n' "${workloads[@]}" | grep -E -- "$filter" || true)
fi
if [[ -n $exclude && ${#workloads[@]} -gt 0 ]]; then
    mapfile -t workloads < <(printf '%s\n' "${workloads[@]}" | grep -vE -- "$exclude" || true)
fi
[[ ${#workloads[@]} -gt 0 ]] || { echo "run_peers.sh: no workload matches" >&2; exit 1; }

raw=${raw:-$peers/last_run.txt}
: >"$raw"
echo "weft peers: ${#workloads[@]} workloads, $runs runs x $inner inner," \
     "workers=${WEFT_BENCH_WORKERS:-2}" >&2
failed=0
for w in "${workloads[@]}"; do
    # The runtimes that implement w.
    who=()
    for i in "${avail[@]}"; do
        # Not grep -q: it would stop reading at the match, and a peer still
        # writing its list would die of SIGPIPE, failing the pipeline.
        if "$peers/${progs[i]}" --list | grep -xF -- "$w" >/dev/null; then
            who+=("$i")
        fi
    done
    for ((r = 1; r <= runs; r++)); do
        for i in "${who[@]}"; do
            if [[ -t 2 ]]; then
                printf '  %-16s %-12s run %d/%d\r' "$w" "${names[i]}" "$r" "$runs" >&2
            fi
            if ! line=$("$peers/${progs[i]}" "$w" "$inner"); then
                echo "run_peers.sh: ${names[i]} $w failed" >&2
                failed=1
                continue
            fi
            echo "$line" >>"$raw"
        done
    done
done
if [[ -t 2 ]]; then printf '%-60s\r' '' >&2; fi

# workload=<w> runtime=<r> ms=<x> result=<v> rss_kib=<k>  ->  the table.
awk '
{
    delete f
    for (i = 1; i <= NF; i++) {
        p = index($i, "=")
        if (p > 0) f[substr($i, 1, p - 1)] = substr($i, p + 1)
    }
    w = f["workload"]; r = f["runtime"]
    key = w SUBSEP r
    if (!(key in n)) {
        if (!(w in seen)) { seen[w] = 1; wl[++nw] = w }
        rl[w, ++nr[w]] = r
    }
    ++n[key]
    v[key, n[key]] = f["ms"] + 0
    rss[key, n[key]] = ("rss_kib" in f) ? f["rss_kib"] / 1024 : -1
}
# Median of x[key, 1..k]; sets lo[key] and hi[key] to the extremes.
function median(x, key, k,   i, j, t, a) {
    for (i = 1; i <= k; i++) a[i] = x[key, i]
    for (i = 2; i <= k; i++)
        for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    lo[key] = a[1]; hi[key] = a[k]
    return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
}
END {
    printf "%-18s %-12s %5s %11s %23s %10s %10s\n", "workload", "runtime", "runs", "median ms", "min-max ms", "peer/weft", "RSS MiB"
    for (i = 1; i <= nw; i++) {
        w = wl[i]
        base = (w SUBSEP "weft") in n ? median(v, w SUBSEP "weft", n[w, "weft"]) : 0
        for (j = 1; j <= nr[w]; j++) {
            r = rl[w, j]; key = w SUBSEP r
            mr = median(rss, key, n[key])
            m = median(v, key, n[key])
            ratio = base > 0 ? sprintf("%.2f", m / base) : "-"
            range = sprintf("%.2f-%.2f", lo[key], hi[key])
            mem = mr >= 0 ? sprintf("%.1f", mr) : "-"
            printf "%-18s %-12s %5d %11.2f %23s %10s %10s\n", w, r, n[key], m, range, ratio, mem
        }
    }
}' "$raw"
echo "raw lines: $raw" >&2
exit "$failed"
