# bench/zz_report.sh (run last by `make bench`) draws bench/results/*.png with gnuplot.
DEPS_PKGS += gnuplot-nox
