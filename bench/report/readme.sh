#!/usr/bin/env bash
# bench/report/readme.sh - refreshes the results block of README.md (the
# lines from "<!-- bench-results:begin" to "<!-- bench-results:end -->")
# from what scripts/bench.sh left in RAW_DIR; the rest of the file is kept.
#
#   bash bench/report/readme.sh RAW_DIR README.md
set -euo pipefail
raw=$1
readme=$2
here=$(dirname "${BASH_SOURCE[0]}")
# shellcheck source=/dev/null
. "$raw/meta"
tsv=$raw/results.tsv

part() { awk -f "$here/common.awk" -f "$here/markdown.awk" -v part="$1" "$tsv"; }

if ! grep -q '^<!-- bench-results:begin' "$readme" || ! grep -q '^<!-- bench-results:end -->' "$readme"; then
    echo "readme.sh: no bench-results block in $readme; left alone" >&2
    exit 0
fi
cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
header=$(sed -n '1s/^# weft bench results: //p' "$tsv")
date=$(sed -n 's/.*date=\([^ ]*\).*/\1/p' <<<"$header")
commit=$(sed -n 's/.*commit=\([^ ]*\).*/\1/p' <<<"$header")

block=$(mktemp)
trap 'rm -f "$block"' EXIT
cat >"$block" <<EOF
<!-- bench-results:begin (written by scripts/bench.sh: edit outside this block) -->
Latest run: $date, commit $commit, on $(nproc) CPUs ($cpu), $(uname -sr);
load average $load_start at the start.${note:+ $note}
Medians in ms over $runs runs per runtime, taken in turns, with their
(min–max); in bold peer/weft, above 1 when weft is faster. $workers worker
threads each. The full report, with memory, the Google Benchmark suite and
the commands: [bench/results/RESULTS.md](bench/results/RESULTS.md).

$(part peers)

Where a peer's median beats weft's:

$(part behind)

![peer/weft per workload](bench/results/ratio.png)

![sleepers: time and memory against N](bench/results/sleepers.png)

![throughput against worker threads](bench/results/scaling.png)
<!-- bench-results:end -->
EOF
awk -v block="$block" '
/^<!-- bench-results:begin/ { while ((getline l < block) > 0) print l; skip = 1; next }
/^<!-- bench-results:end -->/ { skip = 0; next }
!skip
' "$readme" >"$readme.tmp"
mv "$readme.tmp" "$readme"
