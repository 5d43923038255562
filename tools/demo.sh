#!/usr/bin/env bash
# The main job on the built-in mini dataset, CPU only (`make demo`):
#   build mini -> encode latents -> train HS-MAD and Baseline-Global (tiny preset, at the same time)
#   -> generate the test split -> evaluate beside the ceiling rows -> figures -> results/demo_report.md
# About 30 minutes on 2 cores from a fresh clone (setup included). Re-running resumes: a finished step is kept.
# Environment: DEMO_STEPS (training steps per model), DEMO_TRACKS (mini tracks), DEMO_MAX_SECONDS (cut tracks; tests), DATA_ROOT (default data/mini),
# RUNS_DIR (runs/demo), RESULTS (results), FIGURES (figures), EXECUTED (executed), MAX_CLIPS (24), SAMPLE_STEPS (25),
# DEMO_SETS (extra `hsmad train --set` overrides, e.g. "tca_window=8"), DEMO_HELDOUT (1: also score works mini never uses),
# DEMO_PROMPT_SWAP (crops generated under every prompt; 0: off), DEMO_VAL_EVERY (validation gains every N steps), DEMO_W_H,
# DEMO_W_S and DEMO_CFG_FORM (the guidance of every generation; default: the tiny preset's), PY (.venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
STEPS=${DEMO_STEPS:-2000}; TRACKS=${DEMO_TRACKS:-60}; MAX_SECONDS=${DEMO_MAX_SECONDS:-}; PRESET=tiny
DATA_ROOT=${DATA_ROOT:-data/mini}; RUNS_DIR=${RUNS_DIR:-runs/demo}
RESULTS=${RESULTS:-results}; FIGURES=${FIGURES:-figures}; EXECUTED=${EXECUTED:-executed}
MAX_CLIPS=${MAX_CLIPS:-24}; SAMPLE_STEPS=${SAMPLE_STEPS:-25}; SETS=${DEMO_SETS:-}
HELDOUT=${DEMO_HELDOUT:-1}; PROMPT_SWAP=${DEMO_PROMPT_SWAP:-3}; VAL_EVERY=${DEMO_VAL_EVERY:-250}
read -r P_W_H P_W_S P_FORM <<< "$("$PY" -c "from hsmad.config import get_preset; c = get_preset('$PRESET'); print(c.w_H, c.w_S, c.cfg_form)")"
W_H=${DEMO_W_H:-$P_W_H}; W_S=${DEMO_W_S:-$P_W_S}; CFG_FORM=${DEMO_CFG_FORM:-$P_FORM}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE} HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=Agg
CORES=$(nproc)
mkdir -p "$RESULTS" "$FIGURES" "$EXECUTED" "$RUNS_DIR"
T0=$(date +%s)
say() { echo "[demo $(date -u +%H:%M:%S) +$(( $(date +%s) - T0 ))s] $*"; }

# 1. data: the mini dataset (FluidSynth renders of music21's corpus) and its latent cache
if [ -f "$DATA_ROOT/mini.json" ]; then say "mini dataset present in $DATA_ROOT"
else say "building the mini dataset ($TRACKS tracks) in $DATA_ROOT"
  "$PY" -m hsmad.cli data build-mini --out "$DATA_ROOT" --tracks "$TRACKS" --workers "$CORES" ${MAX_SECONDS:+--max-seconds "$MAX_SECONDS"}; fi
CODEC=$("$PY" -c "from hsmad.config import get_preset; print(get_preset('$PRESET').codec)")
CACHE="${DATA_ROOT%/}-latents-$CODEC"
say "encoding the latent cache ($CODEC) in $CACHE"
OMP_NUM_THREADS=$CORES "$PY" -m hsmad.cli data encode --dataset mini --data-root "$DATA_ROOT" --codec "$CODEC" --out "$CACHE"

# 2. train both models at once, each on half the cores; a killed demo resumes from the newest checkpoint
TRAINED_BEFORE=1   # both runs already hold their last checkpoint: this invocation only generates and evaluates
for v in hsmad global; do [ -d "$RUNS_DIR/$v/checkpoints/step_$(printf %08d "$STEPS")" ] || TRAINED_BEFORE=0; done
THREADS=$(( CORES / 2 > 0 ? CORES / 2 : 1 ))
pids=()
for v in hsmad global; do
  run="$RUNS_DIR/$v"; args=(--preset "$PRESET" --dataset mini --data-root "$DATA_ROOT" --cache "$CACHE" --steps "$STEPS"
    --out "$run" --variant "$v" --seed 0 --log-every 20 --ckpt-every 250 --keep-last 0 --val-every "$VAL_EVERY"
    --no-progress --no-tensorboard --device cpu)   # every checkpoint kept: experiments/scaling.ipynb reads them
  { [ -d "$run/checkpoints" ] || [ -s "$run/metrics.jsonl" ]; } && args+=(--resume)   # a folder holding a run is continued, never trained over
  # shellcheck disable=SC2206
  [ -n "$SETS" ] && args+=(--set $SETS)
  mkdir -p "$run"
  OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS "$PY" -m hsmad.train "${args[@]}" > "$run/train.log" 2>&1 &
  pids+=($!)
done
trap 'kill "${pids[@]}" 2>/dev/null || true' INT TERM EXIT   # an interrupted demo leaves no training behind
say "training HS-MAD and Baseline-Global for $STEPS steps each ($THREADS thread(s) each; logs in $RUNS_DIR/*/train.log)"
last_step() { [ -f "$1/metrics.jsonl" ] && tail -n 1 "$1/metrics.jsonl" | "$PY" -c "import json,sys; r=json.loads(sys.stdin.read() or '{}'); print(r.get('step',0), '%.3f' % r.get('ldm', float('nan')), '%.2f' % r.get('steps_per_s', 0))" 2>/dev/null || echo "0 - -"; }
left=(0 1); tick=0
while [ ${#left[@]} -gt 0 ]; do
  sleep 5; tick=$(( tick + 1 )); still=()
  for i in "${left[@]}"; do
    if kill -0 "${pids[$i]}" 2>/dev/null; then still+=("$i")
    elif ! wait "${pids[$i]}"; then   # a failed training stops the demo at once, the other one with it
      kill "${pids[@]}" 2>/dev/null || true
      echo "training failed; the end of its log ($RUNS_DIR/*/train.log):" >&2; tail -n 20 "$RUNS_DIR"/*/train.log >&2; exit 1
    fi
  done
  left=("${still[@]}")
  if [ $(( tick % 6 )) = 0 ] || [ ${#left[@]} = 0 ]; then
    read -r sh lh rh <<< "$(last_step "$RUNS_DIR/hsmad")"; read -r sg lg rg <<< "$(last_step "$RUNS_DIR/global")"
    say "  HS-MAD step $sh/$STEPS (loss $lh, $rh steps/s) | Baseline-Global step $sg/$STEPS (loss $lg, $rg steps/s)"
  fi
done
trap - INT TERM EXIT
say "training done"

# 3. generate the test split with both models and evaluate them beside the ceiling rows (experiments/baselines.ipynb)
say "generating and evaluating $MAX_CLIPS test clips per model (experiments/baselines.ipynb -> $EXECUTED/demo.ipynb)"
OMP_NUM_THREADS=$CORES "$PY" -m papermill experiments/baselines.ipynb "$EXECUTED/demo.ipynb" -k python3 --log-output \
  -p name demo -p dataset mini -p data_root "$DATA_ROOT" -p preset "$PRESET" -p train_steps "$STEPS" \
  -y "{variants: [hsmad, global], runs: {hsmad: '$RUNS_DIR/hsmad', global: '$RUNS_DIR/global'}}" \
  -p max_clips "$MAX_CLIPS" -p steps "$SAMPLE_STEPS" -p w_H "$W_H" -p w_S "$W_S" -p cfg_form "$CFG_FORM" -p out_dir "$RESULTS" -p prompt_swap "$PROMPT_SWAP" \
  -p heldout "$([ "$HELDOUT" = 1 ] && echo True || echo False)" ${MAX_SECONDS:+-p heldout_max_seconds "$MAX_SECONDS"} \
  > "$EXECUTED/demo.log" 2>&1 \
  || { tail -n 40 "$EXECUTED/demo.log" >&2; exit 1; }

# 4. figures (from results/ only) and the report
say "drawing figures from $RESULTS into $FIGURES"
"$PY" -m papermill experiments/figures.ipynb "$EXECUTED/figures.ipynb" -k python3 -p results_dir "$RESULTS" -p figures_dir "$FIGURES" \
  > "$EXECUTED/figures.log" 2>&1 || { tail -n 40 "$EXECUTED/figures.log" >&2; exit 1; }
"$PY" tools/demo_report.py --results "$RESULTS" --runs "$RUNS_DIR" --figures "$FIGURES" --wall-s $(( $(date +%s) - T0 )) \
  $([ "$TRAINED_BEFORE" = 1 ] && echo --trained-before)
say "done: report $RESULTS/demo_report.md, table $RESULTS/demo.csv, figures in $FIGURES/"
cat "$RESULTS/demo_report.md"
