# bench/report/ratio.gp - bar chart of peer/weft per workload.
#   gnuplot -e "dir='DATA_DIR'; out='FILE.png'; title_extra='...'" ratio.gp
# Reads DIR/ratio.dat and DIR/ratio.names (plotdata.awk). A bar runs from
# 1 to the ratio: up, weft is faster; down, the peer is. The y axis is
# logarithmic, so 0.5 and 2 are as far from 1.

names = system("cut -f1 '" . dir . "/ratio.names' | tr '\\n' ' '")
colours = system("cut -f2 '" . dir . "/ratio.names' | tr '\\n' ' '")
n = words(names)
# Wider as workloads are added: about 130 pixels per workload.
rows = int(system("wc -l < '" . dir . "/ratio.dat'"))
set terminal pngcairo size (rows * 130 + 200 > 1100 ? rows * 130 + 200 : 1100),560 font "sans,11" noenhanced
set output out
set title "peer time / weft time per workload (medians; above 1: weft is faster)" . title_extra
set logscale y 2
set ylabel "peer / weft"
set grid ytics
set xtics rotate by -30 scale 0 nomirror
set key top right
set datafile missing "NaN"
set style fill solid 0.85 border -1
# Bar j of workload row r sits at r + (j - (n + 1) / 2) * bw.
bw = 0.8 / n
x(j) = $0 + (j - (n + 1) / 2.0) * bw
lo(v) = v < 1 ? v : 1
hi(v) = v < 1 ? 1 : v
lab(v) = sprintf(v < 10 ? "%.2f" : "%.0f", v)
set xrange [-0.6:*]
set offsets 0, 0.6, 0, 0
set arrow from graph 0, first 1 to graph 1, first 1 nohead lw 1.5 dt 2 lc rgb "black" front
plot for [j = 1:n] dir . "/ratio.dat" using (x(j)):(column(j + 1)):(x(j) - bw / 2):(x(j) + bw / 2):(lo(column(j + 1))):(hi(column(j + 1))) \
        with boxxyerror lc word(colours, j) + 0 title word(names, j), \
     for [j = 1:n] dir . "/ratio.dat" using (x(j)):(column(j + 1) * (column(j + 1) < 1 ? 0.9 : 1.11)):(lab(column(j + 1))) \
        with labels font "sans,8" notitle, \
     dir . "/ratio.dat" using 0:(1):xtic(1) with points lc rgb "#FFFFFFFF" notitle
