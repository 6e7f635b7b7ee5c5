# Fan-out latency percentiles per server (bench/report.py draws it):
#   gnuplot -c bench/latency.gp DATA OUT.png TITLE YMIN
# DATA: a header line "pct server1 server2 ...", then one line per percentile
# (p50 p95 p99 p99.9) with the milliseconds per server ("-" = not measured).
data = ARG1; out = ARG2; ttl = ARG3; ymin = ARG4 + 0
set terminal pngcairo size 760,420 font "DejaVu Sans,10" noenhanced
set output out
set title "Publish-to-receive latency, ".ttl."\n(2 cores shared by server and generator; lower is better)"
set datafile missing "-"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set ylabel "milliseconds (log scale)"
set grid ytics
set key top left
set ytics (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
set yrange [ymin:*] noextend
set offsets 0, 0, graph 0.06, 0
plot for [c=2:*] data using c:xtic(1) title columnheader(c)
