# bench/report/gbench.awk - weft_bench's JSON output (--benchmark_out,
# with --benchmark_repetitions) -> results.tsv rows, section "gbench".
#
#   awk -f common.awk -f gbench.awk gbench.json
#
# Reads the per-repetition entries (run_type "iteration") and computes,
# per case: the median, min and max of real_time over the repetitions, and
# cv, the coefficient of variation (sample standard deviation / mean, as
# Google Benchmark's own _cv aggregate). Google Benchmark writes one
# "key": value pair a line, which is all this parser relies on.

BEGIN { OFS = "\t" }
/^    \{/ { delete f; next }
/^      "[a-z_]+": / {
    line = $0
    sub(/^ *"/, "", line)
    k = line; sub(/".*/, "", k)
    v = line; sub(/^[^:]*: */, "", v); sub(/,$/, "", v); gsub(/"/, "", v)
    f[k] = v
    next
}
/^    \}/ {
    if (f["run_type"] != "iteration" || ("error_occurred" in f && f["error_occurred"] == "true"))
        next
    name = f["run_name"]
    if (!(name in n)) { order[++nc] = name; unit[name] = f["time_unit"] }
    ++n[name]
    t[name, n[name]] = f["real_time"] + 0
    w[name] = ("workers" in f) ? f["workers"] + 0 : "-"
}
END {
    for (i = 1; i <= nc; i++) {
        name = order[i]
        k = n[name]
        sum = 0
        delete a
        for (j = 1; j <= k; j++) { a[j] = t[name, j]; sum += a[j] }
        mean = sum / k
        ss = 0
        for (j = 1; j <= k; j++) ss += (a[j] - mean) ^ 2
        cv = k > 1 && mean > 0 ? sqrt(ss / (k - 1)) / mean : 0
        med = median_n(a, k)
        print "gbench", name, "weft", w[name], k, sprintf("%.4g", med), sprintf("%.4g", a[1]),
              sprintf("%.4g", a[k]), unit[name], "-", sprintf("%.4f", cv)
    }
}
