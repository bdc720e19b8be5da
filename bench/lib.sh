# shellcheck shell=bash
# Shared by the bench/*.sh scripts (sourced, not run). How every comparison here is made: the peers run in
# alternation, round by round, so a change of load on this shared 2-core machine hits both alike; each round gives
# one ratio rkube/peer; a script reports the median of those per-round ratios with their min and max (the spread),
# never the best round. The load average is printed at the start and end of every script.

# The load average line a script prints before and after its rounds.
bench_load() { echo "load average ($1): $(cut -d' ' -f1-3 /proc/loadavg)"; }

# bench_ratio A B: A/B with 4 decimals, or nothing when B is 0 or either is empty.
bench_ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b != "" && b + 0 > 0) printf "%.4f", a / b }'; }

# bench_median_spread FILE: "median min max" of the numbers in FILE (one a line), 2 decimals; "- - -" if none.
bench_median_spread() {
  sort -g "$1" | awk '{v[NR] = $1} END {
    if (NR == 0) { print "- - -"; exit }
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "%.2f %.2f %.2f\n", m, v[1], v[NR] }'
}

# bench_median FILE: the median of the numbers in FILE, 2 decimals.
bench_median() { bench_median_spread "$1" | cut -d' ' -f1; }

# bench_ratio_row LABEL FILE: one line "LABEL  median X (min Y, max Z) over N rounds" for a file of per-round ratios.
bench_ratio_row() {
  local m lo hi
  read -r m lo hi < <(bench_median_spread "$2")
  printf '%-48s median %s (min %s, max %s) over %d rounds\n' "$1" "$m" "$lo" "$hi" "$(grep -c . "$2" || true)"
}
