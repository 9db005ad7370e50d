# How cost grows with the number of plans (gnuplot -e "data='...'; out='...'" scaling.gp).
# Columns of scaling.tsv: plans, cmc initial s, PouchDB(1000) initial s, delta p50 ms,
# idle poll p50 ms, lookup p50 us, lookup p99 us, PouchDB get p50 us.
set terminal pngcairo size 1200,500 font ",10" noenhanced
set output out
set multiplot layout 1,2
set logscale xy
set grid
set key top left
set xlabel "plans seeded on the hub"
set title "initial sync (grows with the snapshot)"
set ylabel "seconds"
plot data using 1:2 with linespoints lw 2 title "cmc", \
     data using 1:($3 > 0 ? $3 : 1/0) with linespoints lw 2 title "PouchDB batch_size 1000", \
     data using 1:(3) with lines dt 2 lc rgb "gray" title "target 3 s"
set title "steady state (should stay flat)"
set ylabel "milliseconds / microseconds"
plot data using 1:4 with linespoints lw 2 title "100-change delta p50 (ms)", \
     data using 1:5 with linespoints lw 2 title "idle poll p50 (ms)", \
     data using 1:6 with linespoints lw 2 title "lookup p50 (us)", \
     data using 1:7 with linespoints lw 2 title "lookup p99 (us)", \
     data using 1:($8 > 0 ? $8 : 1/0) with linespoints lw 2 title "PouchDB get p50 (us)"
unset multiplot
