#!/usr/bin/env bash
# Run the paper's experiment notebooks through papermill into executed/ (results/ and figures/ from their output):
# baselines, ablations, control (the tables, hsmad.eval.evaluate), hypotheses (results/hypotheses.{json,md}), figures.
#   tools/paper.sh tiny    # mini dataset, tiny preset, CPU: trains the variants itself (make paper SCALE=tiny)
#   tools/paper.sh paper   # DATA_ROOT=... [DATASET=slakh GPUS=8 STEPS=1000000 HSMAD_DAC_WEIGHTS=weights.pth HSMAD_RUN=... ...]
#   SMOKE=1 tools/paper.sh tiny   # every notebook in smoke mode (a few minutes): checks the runner itself
# Environment: PY (python, default .venv/bin/python), DATA_ROOT, DATASET, PRESET, STEPS (training steps per variant, the
# budget: recorded in every result file and stated on every figure), JOBS (variants trained at a time as subprocesses on
# an equal share of the cores; tiny: 2 on a machine of 2 or more cores), CKPT_EVERY and KEEP_LAST (hsmad train's --ckpt-every and
# --keep-last; KEEP_LAST=0 keeps every checkpoint), GPUS, RUNS_DIR (where runs are trained, default runs/<scale>),
# RESULTS (results), FIGURES (figures), EXECUTED (executed), CLAP_DIR (CLAP weights: style adherence becomes the CLAP
# score), MAX_CLIPS, SAMPLE_STEPS, CODEC (the codec of the ceiling row and of the models: the preset's own, dac at
# SCALE=paper), HSMAD_DAC_WEIGHTS (local DAC weights) and FORCE=1 (rerun every stage).
# SCALE=paper defaults to the paper's budget: 1,000,000 steps on 8 GPUs (GPUS=8 runs torchrun --nproc_per_node=8).
#
# Resumable, stage by stage. A variant whose run folder (RUNS_DIR/<stage>/<variant>) holds a checkpoint at STEPS is not
# retrained, a partial one is resumed. A stage is complete when EXECUTED/<stage>.done exists and its first line equals the
# stage's key: the hash of its notebook, its papermill arguments and the .done files of the stages it reads (ablations and
# control: baselines; hypotheses and figures: every table). The stamp is written after papermill succeeds, and removed when
# the stage starts; a complete stage is skipped unless FORCE=1. So a killed run, started again with the same command,
# continues where it stopped; a changed setting (STEPS, MAX_CLIPS, ...) or notebook reruns that stage and those after it.
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=${1:-${SCALE:-tiny}}
PY=${PY:-.venv/bin/python}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE} HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=Agg
RESULTS=${RESULTS:-results}; FIGURES=${FIGURES:-figures}; EXECUTED=${EXECUTED:-executed}
RUNS_DIR=${RUNS_DIR:-runs/$SCALE}
SMOKE=${SMOKE:-0}; FORCE=${FORCE:-0}
mkdir -p "$EXECUTED" "$RESULTS" "$FIGURES"
case "$SCALE" in
  tiny)
    DATASET=${DATASET:-mini}; DATA_ROOT=${DATA_ROOT:-data/mini}; PRESET=${PRESET:-tiny}; STEPS=${STEPS:-3000}; GPUS=${GPUS:-0}
    CORES=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)   # the machine's cores (nproc itself obeys OMP_NUM_THREADS)
    JOBS=${JOBS:-$([ "$CORES" -ge 2 ] && echo 2 || echo 1)}
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$CORES}      # evaluation's threads; a training job gets OMP_NUM_THREADS / JOBS (at least 1)
    if [ "$SMOKE" = 1 ]; then DATA_ROOT=""
    elif [ ! -f "$DATA_ROOT/mini.json" ]; then
      echo "[paper] building the mini dataset in $DATA_ROOT"
      "$PY" -c "from hsmad.data.mini import build_mini; build_mini('$DATA_ROOT')"
    fi ;;
  paper)
    DATASET=${DATASET:-slakh}; PRESET=${PRESET:-paper}; STEPS=${STEPS:-1000000}; GPUS=${GPUS:-8}; JOBS=${JOBS:-1}
    [ -n "${DATA_ROOT:-}" ] || { echo "paper scale needs DATA_ROOT (and DATASET, GPUS, optionally HSMAD_RUN, GLOBAL_RUN, FLAT_RUN, ABLATION_RUNS)" >&2; exit 2; } ;;
  *) echo "SCALE must be tiny or paper, not '$SCALE'" >&2; exit 2 ;;
esac

# run folders given for the paper scale (checkpoints trained elsewhere); tiny trains everything into RUNS_DIR
HSMAD_RUN=${HSMAD_RUN:-}; GLOBAL_RUN=${GLOBAL_RUN:-}; FLAT_RUN=${FLAT_RUN:-}; ABLATION_RUNS=${ABLATION_RUNS:-}
yaml_runs() {  # {variant: path} of the given runs, as YAML for papermill -y
  local out="" v p
  for pair in "$@"; do v=${pair%%=*}; p=${pair#*=}; [ -n "$p" ] && out="$out${out:+, }$v: '$p'"; done
  echo "{$out}"
}
BASE_RUNS=$(yaml_runs hsmad="$HSMAD_RUN" global="$GLOBAL_RUN" flat="$FLAT_RUN")
ABL=(hsmad="${HSMAD_RUN:-$RUNS_DIR/baselines/hsmad}")
if [ -n "$ABLATION_RUNS" ]; then
  for v in no_event no_local no_global no_scm no_aux binary_srm tca_plain; do [ -d "$ABLATION_RUNS/$v" ] && ABL+=("$v=$ABLATION_RUNS/$v"); done
fi
ABL_RUNS=$(yaml_runs "${ABL[@]}")
[ "$SMOKE" = 1 ] && ABL_RUNS="{}"   # smoke notebooks train in their own temporary folders

common=(-k python3 --log-output -p smoke "$([ "$SMOKE" = 1 ] && echo True || echo False)")
data=(-p dataset "$DATASET" -p preset "$PRESET" -p train_steps "$STEPS" -p gpus "$GPUS" -p jobs "$JOBS" -p out_dir "$RESULTS")
[ -n "$DATA_ROOT" ] && data+=(-p data_root "$DATA_ROOT")
[ -n "${CKPT_EVERY:-}" ] && data+=(-p ckpt_every "$CKPT_EVERY")
[ -n "${KEEP_LAST:-}" ] && data+=(-p keep_last "$KEEP_LAST")
CODEC=${CODEC:-$("$PY" -c "from hsmad.config import get_preset; print(get_preset('$PRESET').codec)")}   # the preset's codec
data+=(-p codec "$CODEC")
[ -n "${HSMAD_DAC_WEIGHTS:-}" ] && data+=(-p codec_path "$HSMAD_DAC_WEIGHTS")
[ -n "${CLAP_DIR:-}" ] && data+=(-p clap_dir "$CLAP_DIR")
[ -n "${MAX_CLIPS:-}" ] && data+=(-p max_clips "$MAX_CLIPS")
[ -n "${SAMPLE_STEPS:-}" ] && data+=(-p steps "$SAMPLE_STEPS")

t0=$(date +%s)
clock() { date +%H:%M:%S; }
mins() { if [ "$1" -lt 90 ]; then echo "$1 s"; elif [ "$1" -lt 5400 ]; then echo "$(( ($1 + 30) / 60 )) min"; else awk -v s="$1" 'BEGIN { printf "%.1f h", s / 3600 }'; fi; }
estimate() {  # estimate full|left STAGE...: the wall time the tiny run still needs (experiments.params.paper_estimate)
  [ "$SCALE" = tiny ] && [ "$SMOKE" != 1 ] || return 0
  "$PY" -c "import sys; from experiments.params import paper_estimate, describe_estimate
e = paper_estimate('$RUNS_DIR', $STEPS, $JOBS, sys.argv[2:], '$DATA_ROOT', ${MAX_CLIPS:-None}, ${SAMPLE_STEPS:-None})
print(describe_estimate(e, short=sys.argv[1] == 'left'))" "$@" 2>/dev/null || echo "[paper] (no estimate: experiments.params.paper_estimate failed)"
}
# stage NAME "DEPENDENCIES" PAPERMILL-ARGS...: run experiments/NAME.ipynb unless EXECUTED/NAME.done says it is complete
stage() {
  local nb=$1 deps=$2; shift 2
  local stamp="$EXECUTED/$nb.done" key d s
  key=$( { sha1sum "experiments/$nb.ipynb"; printf '%s\n' "${common[@]}" "$@"; for d in $deps; do cat "$EXECUTED/$d.done" 2>/dev/null || echo "missing $d"; done; } | sha1sum | cut -c1-40)
  if [ "$FORCE" != 1 ] && [ -f "$EXECUTED/$nb.ipynb" ] && [ -f "$stamp" ] && [ "$(head -n1 "$stamp")" = "$key" ]; then
    echo "[paper] $(clock) $nb: complete ($stamp), skipped (FORCE=1 reruns it)"; return 0
  fi
  rm -f "$stamp"
  echo "[paper] $(clock) $nb: start"
  s=$(date +%s)
  "$PY" -m papermill "experiments/$nb.ipynb" "$EXECUTED/$nb.ipynb" "${common[@]}" "$@"
  printf '%s\nfinished %s in %s s\n' "$key" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(( $(date +%s) - s ))" > "$stamp"
  echo "[paper] $(clock) $nb: done in $(mins $(( $(date +%s) - s ))) ($(mins $(( $(date +%s) - t0 ))) since the start)"
}

echo "[paper] $(clock) SCALE=$SCALE STEPS=$STEPS JOBS=$JOBS OMP_NUM_THREADS=${OMP_NUM_THREADS:-} RUNS_DIR=$RUNS_DIR RESULTS=$RESULTS$([ "$SMOKE" = 1 ] && echo ' (smoke)')"
estimate full baselines ablations control
stage baselines "" "${data[@]}" -p runs_dir "$RUNS_DIR/baselines" -y "runs: $BASE_RUNS"
estimate left ablations control
stage ablations "baselines" "${data[@]}" -p runs_dir "$RUNS_DIR/ablations" -y "runs: $ABL_RUNS"
estimate left control
if [ "$SMOKE" = 1 ]; then stage control "baselines" "${data[@]}" -p runs_dir "$RUNS_DIR/control"
else stage control "baselines" "${data[@]}" -p run "${HSMAD_RUN:-$RUNS_DIR/baselines/hsmad}"; fi
stage hypotheses "baselines ablations control" -p results_dir "$RESULTS" -p out_dir "$RESULTS"
stage figures "baselines ablations control hypotheses" -p results_dir "$RESULTS" -p figures_dir "$FIGURES"
echo "[paper] $(clock) done in $(mins $(( $(date +%s) - t0 ))): executed notebooks in $EXECUTED/, tables and $RESULTS/hypotheses.md in $RESULTS/, figures in $FIGURES/"
