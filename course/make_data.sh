#!/usr/bin/env bash
# Record the classroom pack's data into course/data (about 16 minutes on two cores):
#
#   bash course/make_data.sh            # with .venv/bin/python, else python3
#   PYTHON=/path/to/python bash course/make_data.sh
#
# 1. course/data/course      the dataset: spike, fault-latency, fault-threads and mixed (the
#                            open-model built-ins), seeds 1 and 2, each scaled to 60 s
# 2. course/data/signal      steady load at 30 and 90 requests/s (course/scenarios/noise.toml) and
#                            one stall under the open and the closed model (stall.toml,
#                            stall-closed.toml), seed 5
# 3. course/data/autoscale   model/: the forecaster the predictive autoscaler reads, trained
#                            on the dataset without spike; runs/: spike (seed 1, 60 s) with
#                            --autoscale off, reactive and predictive
#
# Latency figures depend on the machine being otherwise idle: never run this beside another
# recording or a test run. The data it replaces is moved to course/data.old first and
# removed only when every step has succeeded (a failed step says where the old data is).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
DATA=course/data
OLD=course/data.old

if [ -e "$OLD" ]; then
  echo "error: $OLD exists (left by an earlier failed run): restore it or remove it first" >&2
  exit 2
fi
if [ -e "$DATA" ]; then
  mv "$DATA" "$OLD"
  trap 'echo "error: a step failed; the previous data is in $OLD" >&2' ERR
fi
mkdir -p "$DATA"

"$PY" lab.py generate-dataset --out "$DATA/course" --scenarios spike,fault-latency,fault-threads,mixed \
    --seeds 1,2 --duration 60 --quiet
"$PY" lab.py generate-dataset --out "$DATA/signal" --seeds 5 --quiet \
    --scenarios course/scenarios/noise.toml,course/scenarios/stall.toml,course/scenarios/stall-closed.toml

# The predictive autoscaler's model: the quickstart's window and horizon, spike held out.
"$PY" lab.py train "$DATA/course" --holdout spike --window 15 --horizon 10 --epochs 40 \
    --out "$DATA/autoscale/model" --quiet
for mode in off reactive predictive; do
  model=()
  if [ "$mode" = predictive ]; then model=(--model "$DATA/autoscale/model"); fi
  "$PY" lab.py run-scenario spike --seed 1 --duration 60 --autoscale "$mode" "${model[@]}" \
      --out "$DATA/autoscale/runs" --quiet
done

rm -rf "$OLD"
du -sh "$DATA" "$DATA"/*
