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
