# bench/report/common.awk - helpers shared by the report scripts (loaded
# with -f before the script that uses them).

# Sorts a[1..k] in place (insertion sort: k is a handful of runs).
function sort_n(a, k,   i, j, t) {
    for (i = 2; i <= k; i++)
        for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
}

# Median of a[1..k], sorted first.
function median_n(a, k) {
    sort_n(a, k)
    return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
}

# A number with three significant digits or more: 0.0123, 1.23, 12.3, 123, 1234.
function fmt(x,   ax) {
    ax = x < 0 ? -x : x
    if (ax >= 100) return sprintf("%.0f", x)
    if (ax >= 10) return sprintf("%.1f", x)
    if (ax >= 1) return sprintf("%.2f", x)
    return sprintf("%.3g", x)
}

# Reads the results.tsv header line (column names) into col[name] = index.
function tsv_header(   i) {
    for (i = 1; i <= NF; i++) col[$i] = i
}

# Runtime order: rl[s, 1..nrl[s]] holds section s's runtimes in order of
# first appearance, and a runtime that only a few workloads have
# (openmp-static, say) appears late. order_runtimes(s) puts them in the
# order of the comma-separated list rt_order (the runtimes= field of the
# results.tsv comment line, from run_peers.sh -l); runtimes not in it keep
# their place after those that are.
function order_runtimes(s,   i, k, n, t, rank, key, tmp) {
    n = split(rt_order, tmp, ",")
    for (i = 1; i <= n; i++) rank[tmp[i]] = i
    for (i = 1; i <= nrl[s]; i++) {
        tmp[i] = rl[s, i]
        key[i] = ((rl[s, i] in rank) ? rank[rl[s, i]] : n + i)
    }
    for (i = 2; i <= nrl[s]; i++)
        for (k = i; k > 1 && key[k - 1] > key[k]; k--) {
            t = key[k]; key[k] = key[k - 1]; key[k - 1] = t
            t = tmp[k]; tmp[k] = tmp[k - 1]; tmp[k - 1] = t
        }
    for (i = 1; i <= nrl[s]; i++) rl[s, i] = tmp[i]
}

# On the results.tsv comment line, keeps the runtimes= field in rt_order.
function read_comment(   i) {
    for (i = 1; i <= NF; i++)
        if ($i ~ /^runtimes=/) rt_order = substr($i, 10)
}
