# bench/report/markdown.awk - results.tsv -> one Markdown part of the report.
#
#   awk -f common.awk -f markdown.awk -v part=PART results.tsv
#
# PART is one of:
#   peers    workload x runtime: median ms (min-max over the runs) and
#            peer/weft, the ratio of the medians (above 1: weft is faster)
#   rss      workload x runtime: median peak RSS in MiB
#   behind   a list of the workloads where a peer's median beats weft's,
#            and whether the two min-max ranges overlap or the peer's
#            slowest run beat weft's fastest
#   scaling  workload and runtime x worker count: median ms (min-max),
#            and the speed-up from 1 worker to the most
#   gbench   Google Benchmark case: median, min-max, cv, workers
# Rows keep the order of results.tsv; runtimes the report order (common.awk).

BEGIN { FS = "\t" }
/^#/ { FS = " "; $0 = $0; read_comment(); FS = "\t"; next }
$1 == "section" { tsv_header(); next }
{
    s = $col["section"]; w = $col["workload"]; r = $col["runtime"]; nw = $col["workers"]
    key = s SUBSEP w SUBSEP r SUBSEP nw
    med[key] = $col["median"]; lo[key] = $col["min"]; hi[key] = $col["max"]
    unit[key] = $col["unit"]; rss[key] = $col["rss_mib"]; cv[key] = $col["cv"]; runs[key] = $col["runs"]
    if (!((s, w) in seenw)) { seenw[s, w] = 1; wl[s, ++nwl[s]] = w }
    if (!((s, r) in seenr)) { seenr[s, r] = 1; rl[s, ++nrl[s]] = r }
    if (!((s, nw) in seenn)) { seenn[s, nw] = 1; nl[s, ++nnl[s]] = nw }
    if (!((s, w, nw) in wk)) wk[s, w, nw] = r
    wrk[s, w] = nw
}

function range(key) { return fmt(lo[key]) "–" fmt(hi[key]) }

# The matrix header: workload, then one column per runtime of section s.
function matrix_header(s, first,   j, h, sep) {
    h = "| " first; sep = "|---"
    for (j = 1; j <= nrl[s]; j++) { h = h " | " rl[s, j]; sep = sep "|---" }
    print h " |"; print sep "|"
}

function part_peers(   i, j, w, r, key, base, cell, row) {
    matrix_header("peers", "workload (ms)")
    for (i = 1; i <= nwl["peers"]; i++) {
        w = wl["peers", i]; row = "| " w
        base = "peers" SUBSEP w SUBSEP "weft" SUBSEP wrk["peers", w]
        for (j = 1; j <= nrl["peers"]; j++) {
            r = rl["peers", j]; key = "peers" SUBSEP w SUBSEP r SUBSEP wrk["peers", w]
            if (!(key in med)) { row = row " | –"; continue }
            cell = fmt(med[key]) " (" range(key) ")"
            if (r != "weft" && (base in med) && med[base] > 0)
                cell = cell " **" sprintf("%.2f", med[key] / med[base]) "**"
            row = row " | " cell
        }
        print row " |"
    }
}

function part_rss(   i, j, w, key, row) {
    matrix_header("peers", "workload (MiB)")
    for (i = 1; i <= nwl["peers"]; i++) {
        w = wl["peers", i]; row = "| " w
        for (j = 1; j <= nrl["peers"]; j++) {
            key = "peers" SUBSEP w SUBSEP rl["peers", j] SUBSEP wrk["peers", w]
            row = row " | " ((key in rss) && rss[key] != "-" ? rss[key] : "–")
        }
        print row " |"
    }
}

function part_behind(   i, j, w, r, key, base, any, note) {
    for (i = 1; i <= nwl["peers"]; i++) {
        w = wl["peers", i]
        base = "peers" SUBSEP w SUBSEP "weft" SUBSEP wrk["peers", w]
        if (!(base in med)) continue
        for (j = 1; j <= nrl["peers"]; j++) {
            r = rl["peers", j]; key = "peers" SUBSEP w SUBSEP r SUBSEP wrk["peers", w]
            if (r == "weft" || !(key in med) || med[key] + 0 >= med[base] + 0) continue
            note = hi[key] + 0 < lo[base] + 0 ? "; in every run" : "; the min–max ranges overlap"
            printf "- `%s`: %s %s ms against weft's %s ms (peer/weft %.2f%s)\n", w, r,
                fmt(med[key]), fmt(med[base]), med[key] / med[base], note
            any = 1
        }
    }
    if (!any) print "- nowhere: weft's median is the lowest on every workload."
}

function part_scaling(   i, j, m, w, r, key, row, h, sep, k1, kn, first, last) {
    first = nl["scaling", 1]; last = nl["scaling", nnl["scaling"]]
    h = "| workload | runtime"; sep = "|---|---"
    for (m = 1; m <= nnl["scaling"]; m++) { h = h " | " nl["scaling", m] " worker" (nl["scaling", m] == 1 ? "" : "s") " (ms)"; sep = sep "|---" }
    print h " | speed-up " first "→" last " |"; print sep "|---|"
    for (i = 1; i <= nwl["scaling"]; i++) {
        w = wl["scaling", i]
        for (j = 1; j <= nrl["scaling"]; j++) {
            r = rl["scaling", j]; row = "| " w " | " r; k1 = kn = ""
            for (m = 1; m <= nnl["scaling"]; m++) {
                key = "scaling" SUBSEP w SUBSEP r SUBSEP nl["scaling", m]
                row = row " | " ((key in med) ? fmt(med[key]) " (" range(key) ")" : "–")
                if (m == 1 && (key in med)) k1 = key
                if (m == nnl["scaling"] && (key in med)) kn = key
            }
            if (k1 == "" && kn == "") continue
            row = row " | " (k1 != "" && kn != "" && med[kn] > 0 ? sprintf("%.2f", med[k1] / med[kn]) : "–")
            print row " |"
        }
    }
}

function part_gbench(   i, w, key) {
    print "| case | workers | median | min–max | cv |"
    print "|---|---|---|---|---|"
    for (i = 1; i <= nwl["gbench"]; i++) {
        w = wl["gbench", i]; key = "gbench" SUBSEP w SUBSEP "weft" SUBSEP wrk["gbench", w]
        printf "| `%s` | %s | %s %s | %s | %.1f%% |\n", w, (wrk["gbench", w] == "-" ? "–" : wrk["gbench", w]), fmt(med[key]), unit[key],
            range(key), cv[key] * 100
    }
}

END {
    order_runtimes("peers"); order_runtimes("scaling")
    if (part == "peers") part_peers()
    else if (part == "rss") part_rss()
    else if (part == "behind") part_behind()
    else if (part == "scaling") part_scaling()
    else if (part == "gbench") part_gbench()
    else { print "markdown.awk: unknown part " part > "/dev/stderr"; exit 2 }
}
