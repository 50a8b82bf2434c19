#!/bin/bash
# Full issue-16 evaluation of the code in SRC (a copy of src/), README "Reproducing the figures"
# commands, results under OUT. Usage: run_full_eval.sh SRC OUT
# Heavy: runs under `flock -s /tmp/bench.lock nice -n 10` (common.md).
set -e
SRC=$1; OUT=$2
VENV=/work/wt-auto/.venv
mkdir -p "$OUT"
run() { PYTHONPATH="$SRC" flock -s /tmp/bench.lock nice -n 10 "$VENV/bin/python" -m routerone "$@"; }
for d in arena mmlu gsm8k; do
  ( time run eval-routing /tmp/rt/$d/all.csv /tmp/rt/$d/all.csv --prices /tmp/rt/$d/prices.json --out "$OUT/$d" ) > "$OUT/$d.log" 2>&1
done
( time run eval-routing --lodo --out "$OUT/lodo" ) > "$OUT/lodo.log" 2>&1
PYTHONPATH="$SRC" "$VENV/bin/python" /work/wt-auto/bench/auto_v3/summarise.py "$OUT" > "$OUT/summary.md"
