# The one reading of test summaries, sourced by tools/run-tests, tools/check and .ci/run.
# last_busted FILE: the last busted summary line in FILE ("N successes / N failures / N errors ...") into
#   $summary, its successes into $s and its failures plus errors into $f; status 1 when FILE has none (a crash).
# last_total FILE: the same for the last "N passed, N failed" line (what tools/run-tests and the others end with).
last_busted() {
  summary=$(grep -E '^[0-9]+ success(es)? / [0-9]+ failures? / [0-9]+ errors?' "$1" | tail -n 1)
  [[ $summary =~ ^([0-9]+)\ success(es)?\ /\ ([0-9]+)\ failures?\ /\ ([0-9]+)\ errors? ]] || return 1
  s=${BASH_REMATCH[1]} f=$((BASH_REMATCH[3] + BASH_REMATCH[4]))
}

last_total() {
  summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1)
  [[ $summary =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed ]] || return 1
  s=${BASH_REMATCH[1]} f=${BASH_REMATCH[2]}
}
