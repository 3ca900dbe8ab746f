# bench/report/sleepers.gp - sleepers/N: time and peak memory against N.
#   gnuplot -e "dir='DATA_DIR'; out='FILE.png'; title_extra='...'" sleepers.gp
# Reads DIR/sleepers.dat and DIR/sleepers.names (plotdata.awk): a block
# per runtime of N, median ms, min ms, max ms, peak RSS MiB. Log-log axes;
# the time panel takes the 1 s every task sleeps out.

names = system("cut -f1 '" . dir . "/sleepers.names' | tr '\\n' ' '")
colours = system("cut -f2 '" . dir . "/sleepers.names' | tr '\\n' ' '")
n = words(names)
set terminal pngcairo size 1100,480 font "sans,11" noenhanced
set output out
set multiplot layout 1,2 title "sleepers/N: N tasks each sleep 1 s, then all are joined" . title_extra
set logscale xy 10
set format x "%.0s%c"
set xlabel "N (tasks)"
set grid
set key top left Left reverse
set offsets graph 0.05, graph 0.05, 0, 0
# Every task sleeps PEER_SLEEP_MS (bench/peers/peer.h): plot what is beyond.
sleep_ms = 1000
set title "time beyond the 1 s sleep (bars: min–max)"
set ylabel "ms"
plot for [i = 0:n - 1] dir . "/sleepers.dat" index i using 1:($2 - sleep_ms):($3 - sleep_ms):($4 - sleep_ms) with yerrorlines lw 2 lc word(colours, i + 1) + 0 title word(names, i + 1)
set title "peak RSS of the process"
set ylabel "MiB"
plot for [i = 0:n - 1] dir . "/sleepers.dat" index i using 1:5 with linespoints lw 2 lc word(colours, i + 1) + 0 title word(names, i + 1)
unset multiplot
