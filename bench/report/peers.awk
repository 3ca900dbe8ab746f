# bench/report/peers.awk - run_peers.sh raw lines -> results.tsv rows.
#
#   awk -f common.awk -f peers.awk -v section=peers -v workers=2 RAW...
#
# A raw line is one program run: workload=<w> runtime=<r> ms=<median of
# its inner runs> result=<v> rss_kib=<peak>. Per workload and runtime, in
# order of first appearance, prints the median, min and max of ms over the
# runs and the median peak RSS in MiB (see results.tsv in
# bench/report/README.md for the columns).

BEGIN { OFS = "\t" }
/^workload=/ {
    delete f
    for (i = 1; i <= NF; i++) {
        p = index($i, "=")
        if (p > 0) f[substr($i, 1, p - 1)] = substr($i, p + 1)
    }
    key = f["workload"] SUBSEP f["runtime"]
    if (!(key in n)) { order[++nk] = key; wl[key] = f["workload"]; rt[key] = f["runtime"] }
    ++n[key]
    ms[key, n[key]] = f["ms"] + 0
    rss[key, n[key]] = ("rss_kib" in f) ? f["rss_kib"] / 1024 : -1
}
END {
    for (i = 1; i <= nk; i++) {
        key = order[i]
        k = n[key]
        delete a
        for (j = 1; j <= k; j++) a[j] = ms[key, j]
        med = median_n(a, k)
        lo = a[1]; hi = a[k]
        delete a
        for (j = 1; j <= k; j++) a[j] = rss[key, j]
        mr = median_n(a, k)
        print section, wl[key], rt[key], workers, k, sprintf("%.3f", med), sprintf("%.3f", lo),
              sprintf("%.3f", hi), "ms", (mr >= 0 ? sprintf("%.1f", mr) : "-"), "-"
    }
}
