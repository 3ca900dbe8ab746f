# bench/report/compare.awk - the regression view: what moved between two
# results.tsv files beyond the noise both runs showed.
#
#   awk -f common.awk -f compare.awk OLD.tsv NEW.tsv
#
# Rows match on section, workload, runtime and workers. The noise of a row
# is its min-max range over the runs. A row moved when the old and the new
# ranges do not overlap: new min > old max (slower), or new max < old min
# (faster). A change inside either run's spread is not reported. Every
# figure is a time, so higher is slower. Prints one line per moved row,
# then a count; rows in only one file are counted, not compared.

BEGIN { FS = "\t" }
FNR == 1 { file++ }
/^#/ { next }
$1 == "section" { tsv_header(); next }
{
    key = $col["section"] SUBSEP $col["workload"] SUBSEP $col["runtime"] SUBSEP $col["workers"]
    if (file == 1) {
        omed[key] = $col["median"]; olo[key] = $col["min"]; ohi[key] = $col["max"]
        next
    }
    order[++n] = key
    med[key] = $col["median"]; lo[key] = $col["min"]; hi[key] = $col["max"]; unit[key] = $col["unit"]
}
END {
    for (i = 1; i <= n; i++) {
        key = order[i]
        if (!(key in omed)) { added++; continue }
        matched++
        if (lo[key] + 0 > ohi[key] + 0) how = "slower"
        else if (hi[key] + 0 < olo[key] + 0) how = "faster"
        else continue
        split(key, k, SUBSEP)
        printf "  %-6s %-8s %-44s %-12s %3s  %s -> %s %s (%+.0f%%)  ranges %s-%s -> %s-%s\n", how, k[1], k[2], k[3],
            (k[4] == "-" ? "" : k[4] "w"), fmt(omed[key]), fmt(med[key]), unit[key],
            (omed[key] > 0 ? 100 * (med[key] / omed[key] - 1) : 0),
            fmt(olo[key]), fmt(ohi[key]), fmt(lo[key]), fmt(hi[key])
        moved++
    }
    for (key in omed) if (!(key in med)) dropped++
    printf "%d of %d rows moved beyond the noise; %d new, %d no longer measured\n",
        moved + 0, matched + 0, added + 0, dropped + 0
}
