# bench/report/scaling.gp - throughput against worker threads, one panel per
# workload.
#   gnuplot -e "dir='DATA_DIR'; out='FILE.png'; title_extra='...'" scaling.gp
# Reads DIR/scaling.workloads and, for the k-th workload, DIR/scaling-k.dat
# and DIR/scaling-k.names (plotdata.awk): a block per runtime of workers,
# then M tasks/s at the median, the slowest and the fastest run.

workloads = system("tr '\\n' ' ' < '" . dir . "/scaling.workloads'")
nw = words(workloads)
set terminal pngcairo size 1100,480 font "sans,11" noenhanced
set output out
set multiplot layout 1,nw title "throughput against worker threads (WEFT_BENCH_WORKERS)" . title_extra
set xlabel "worker threads"
set ylabel "million tasks/s"
set logscale y 2
set xtics 1
set grid
set key outside right top vertical Left reverse
set autoscale xfix
set offsets 0.3, 0.3, 0, 0
do for [k = 1:nw] {
    names = system(sprintf("cut -f1 '%s/scaling-%d.names' | tr '\\n' ' '", dir, k))
    colours = system(sprintf("cut -f2 '%s/scaling-%d.names' | tr '\\n' ' '", dir, k))
    set title word(workloads, k) . " (bars: slowest–fastest run)"
    plot for [b = 1:words(names)] sprintf("%s/scaling-%d.dat", dir, k) index (b - 1) \
        using 1:2:3:4 with yerrorlines lw 2 lc word(colours, b) + 0 title word(names, b)
}
unset multiplot
