# Deliveries per second per scenario and server (bench/report.py draws it):
#   gnuplot -c bench/throughput.gp DATA OUT.png YMIN
# DATA: a header line "scenario server1 ... offered", then one line per
# scenario: delivered msgs/s per server ("-" = n/a) and the offered rate.
data = ARG1; out = ARG2; ymin = ARG3 + 0
set terminal pngcairo size 860,440 font "DejaVu Sans,10" noenhanced
set output out
set title "Delivered messages per second; circle = offered (publications/s x subscribers per channel)\n(2 cores shared by server and generator; higher is better)"
set datafile missing "-"
set key autotitle columnheader
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set yrange [ymin:*] noextend
set offsets 0, 0, graph 0.06, 0
set format y "%.0s%c"
set ylabel "deliveries / s (log scale)"
set grid ytics
set key below horizontal
stats data using 2 nooutput
ncols = STATS_columns
plot for [c=2:ncols-1] data using c:xtic(1), \
     data using ($0):(column(ncols)) with points pt 6 ps 1.8 lw 2 lc rgb "black" title "offered"
