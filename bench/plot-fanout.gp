# gnuplot -e "csv='fanout.csv'; out='bench/fanout.png'" bench/plot-fanout.gp
# CPU (cores) and RSS (MB) of the relay process against N: ours (direct send,
# the default), ours with direct-send=false (every packet through each
# viewer's webrtcbin) and naive (tee + one default webrtcbin per viewer).
set datafile separator ','
set terminal pngcairo size 1000,450 font ',10'
set output out
set multiplot layout 1,2
set key top left
set grid
set xlabel 'viewers (N)'
set ylabel 'relay CPU (cores = CPU s per s)'
plot csv using (strcol(1) eq 'ours' ? $2 : NaN):5 with linespoints title 'ours (whepserversink, direct send)', \
     csv using (strcol(1) eq 'ours-webrtcbin' ? $2 : NaN):5 with linespoints title 'ours, direct-send=false', \
     csv using (strcol(1) eq 'naive' ? $2 : NaN):5 with linespoints title 'naive (tee + webrtcbin)'
set ylabel 'relay RSS (MB)'
plot csv using (strcol(1) eq 'ours' ? $2 : NaN):6 with linespoints title 'ours (whepserversink, direct send)', \
     csv using (strcol(1) eq 'ours-webrtcbin' ? $2 : NaN):6 with linespoints title 'ours, direct-send=false', \
     csv using (strcol(1) eq 'naive' ? $2 : NaN):6 with linespoints title 'naive (tee + webrtcbin)'
unset multiplot
