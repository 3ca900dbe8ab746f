# bench/report/plotdata.awk - results.tsv -> the data files gnuplot reads.
#
#   awk -f common.awk -f plotdata.awk -v dir=DIR results.tsv
#
# Writes into DIR:
#   ratio.dat       one row per peers workload: the workload, then peer/weft
#                   for each peer runtime (NaN where it has no such
#                   workload), in the order of ratio.names
#   sleepers.dat    one block per runtime (blocks split by two blank lines):
#                   N, median ms, min ms, max ms, peak RSS MiB, one row per
#                   sleepers/N workload
#   scaling.workloads  the scaling workloads, one a line; for the k-th:
#   scaling-k.dat   one block per runtime: workers, then the throughput in
#                   million tasks/s at the median, the slowest and the
#                   fastest run
#   *.names         per block (per column for ratio): the runtime, a tab,
#                   and its colour index (its rank in the file, weft first),
#                   so a runtime keeps its colour in every plot
# and prints nothing. A workload name ends in its size: 10k, 100k, 1M.

BEGIN { FS = "\t" }
/^#/ { FS = " "; $0 = $0; read_comment(); FS = "\t"; next }
$1 == "section" { tsv_header(); next }
{
    s = $col["section"]; w = $col["workload"]; r = $col["runtime"]
    key = s SUBSEP w SUBSEP r SUBSEP $col["workers"]
    med[key] = $col["median"]; lo[key] = $col["min"]; hi[key] = $col["max"]; rss[key] = $col["rss_mib"]
    if (!((s, w) in seenw)) { seenw[s, w] = 1; wl[s, ++nwl[s]] = w }
    if (!((s, r) in seenr)) { seenr[s, r] = 1; rl[s, ++nrl[s]] = r }
    if (!((s, $col["workers"]) in seenn)) { seenn[s, $col["workers"]] = 1; nl[s, ++nnl[s]] = $col["workers"] }
    wrk[s, w] = $col["workers"]
}

# 10k -> 10000, 1M -> 1000000, 30 -> 30: the size at the end of a name.
function size_of(w,   x) {
    x = w; sub(/.*\//, "", x)
    if (x ~ /[kK]$/) return substr(x, 1, length(x) - 1) * 1000
    if (x ~ /M$/) return substr(x, 1, length(x) - 1) * 1000000
    return x + 0
}

# Tasks one run of a scaling workload spawns (its items).
function tasks_of(w) {
    if (w == "fib/30") return 1346268          # fib calls with n >= 2
    if (w ~ /^skynet\//) return int((10 * size_of(w) - 1) / 9)  # 1 + 10 + ... + N nodes
    return 1                                    # unknown: runs/s
}

END {
    order_runtimes("peers"); order_runtimes("scaling")
    # A runtime's colour: its rank in the main table (weft first).
    for (j = 1; j <= nrl["peers"]; j++) colour[rl["peers", j]] = j
    nc = nrl["peers"]
    for (j = 1; j <= nrl["scaling"]; j++) if (!(rl["scaling", j] in colour)) colour[rl["scaling", j]] = ++nc
    f = dir "/ratio.dat"; names = dir "/ratio.names"; printf "" > names
    printf "" > f
    for (j = 1; j <= nrl["peers"]; j++) if (rl["peers", j] != "weft")
        print rl["peers", j] "\t" colour[rl["peers", j]] > names
    for (i = 1; i <= nwl["peers"]; i++) {
        w = wl["peers", i]; base = "peers" SUBSEP w SUBSEP "weft" SUBSEP wrk["peers", w]
        if (!(base in med)) continue
        printf "%s", w > f
        for (j = 1; j <= nrl["peers"]; j++) if (rl["peers", j] != "weft") {
            key = "peers" SUBSEP w SUBSEP rl["peers", j] SUBSEP wrk["peers", w]
            printf "\t%s", ((key in med) ? sprintf("%.4f", med[key] / med[base]) : "NaN") > f
        }
        printf "\n" > f
    }
    close(f); close(names)

    f = dir "/sleepers.dat"; names = dir "/sleepers.names"; printf "" > f; printf "" > names
    nb = 0
    for (j = 1; j <= nrl["peers"]; j++) {
        r = rl["peers", j]; rows = 0
        for (i = 1; i <= nwl["peers"]; i++) {
            w = wl["peers", i]
            if (w !~ /^sleepers\//) continue
            key = "peers" SUBSEP w SUBSEP r SUBSEP wrk["peers", w]
            if (!(key in med)) continue
            if (rows++ == 0 && nb++ > 0) printf "\n\n" > f
            printf "%d\t%s\t%s\t%s\t%s\n", size_of(w), med[key], lo[key], hi[key], rss[key] > f
        }
        if (rows > 0) print r "\t" colour[r] > names
    }
    close(f); close(names)

    list = dir "/scaling.workloads"; printf "" > list
    for (i = 1; i <= nwl["scaling"]; i++) {
        w = wl["scaling", i]; t = tasks_of(w) / 1e6
        print w > list
        f = dir "/scaling-" i ".dat"; names = dir "/scaling-" i ".names"; printf "" > f; printf "" > names
        nb = 0
        for (j = 1; j <= nrl["scaling"]; j++) {
            r = rl["scaling", j]; rows = 0
            for (m = 1; m <= nnl["scaling"]; m++) {
                key = "scaling" SUBSEP w SUBSEP r SUBSEP nl["scaling", m]
                if (!(key in med) || med[key] <= 0) continue
                if (rows++ == 0 && nb++ > 0) printf "\n\n" > f
                printf "%d\t%.4f\t%.4f\t%.4f\n", nl["scaling", m], t * 1000 / med[key],
                    t * 1000 / hi[key], t * 1000 / lo[key] > f
            }
            if (rows > 0) print r "\t" colour[r] > names
        }
        close(f); close(names)
    }
    close(list)
}
