#!/usr/bin/env bash
# Run the paper's experiment notebooks through papermill into executed/ (results/ and figures/ from their output):
# baselines, ablations, control (the tables, hsmad.eval.evaluate), hypotheses (results/hypotheses.{json,md}), figures.
#   tools/paper.sh tiny    # mini dataset, tiny preset, CPU: trains the variants itself (make paper SCALE=tiny)
#   tools/paper.sh paper   # DATA_ROOT=... [DATASET=slakh GPUS=8 STEPS=1000000 HSMAD_DAC_WEIGHTS=weights.pth HSMAD_RUN=... ...]
#   SMOKE=1 tools/paper.sh tiny   # every notebook in smoke mode (a minute or two): checks the runner itself
# Environment: PY (python, default .venv/bin/python), DATA_ROOT, DATASET, PRESET, STEPS (training steps per variant),
# GPUS, RUNS_DIR (where runs are trained, default runs/<scale>), RESULTS (results), FIGURES (figures), EXECUTED (executed),
# CLAP_DIR (CLAP weights: style adherence becomes the CLAP score), MAX_CLIPS, SAMPLE_STEPS, CODEC (the codec of the
# ceiling row and of the models: the preset's own, dac at SCALE=paper) and HSMAD_DAC_WEIGHTS (local DAC weights).
# SCALE=paper defaults to the paper's budget: 1,000,000 steps on 8 GPUs (GPUS=8 runs torchrun --nproc_per_node=8).
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=${1:-${SCALE:-tiny}}
PY=${PY:-.venv/bin/python}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE} HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=Agg
RESULTS=${RESULTS:-results}; FIGURES=${FIGURES:-figures}; EXECUTED=${EXECUTED:-executed}
RUNS_DIR=${RUNS_DIR:-runs/$SCALE}
SMOKE=${SMOKE:-0}
mkdir -p "$EXECUTED" "$RESULTS" "$FIGURES"
case "$SCALE" in
  tiny)
    DATASET=${DATASET:-mini}; DATA_ROOT=${DATA_ROOT:-data/mini}; PRESET=${PRESET:-tiny}; STEPS=${STEPS:-3000}; GPUS=${GPUS:-0}
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
    if [ "$SMOKE" = 1 ]; then DATA_ROOT=""
    elif [ ! -f "$DATA_ROOT/mini.json" ]; then
      echo "[paper] building the mini dataset in $DATA_ROOT"
      "$PY" -c "from hsmad.data.mini import build_mini; build_mini('$DATA_ROOT')"
    fi ;;
  paper)
    DATASET=${DATASET:-slakh}; PRESET=${PRESET:-paper}; STEPS=${STEPS:-1000000}; GPUS=${GPUS:-8}
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
data=(-p dataset "$DATASET" -p preset "$PRESET" -p train_steps "$STEPS" -p gpus "$GPUS" -p out_dir "$RESULTS")
[ -n "$DATA_ROOT" ] && data+=(-p data_root "$DATA_ROOT")
CODEC=${CODEC:-$("$PY" -c "from hsmad.config import get_preset; print(get_preset('$PRESET').codec)")}   # the preset's codec
data+=(-p codec "$CODEC")
[ -n "${HSMAD_DAC_WEIGHTS:-}" ] && data+=(-p codec_path "$HSMAD_DAC_WEIGHTS")
[ -n "${CLAP_DIR:-}" ] && data+=(-p clap_dir "$CLAP_DIR")
[ -n "${MAX_CLIPS:-}" ] && data+=(-p max_clips "$MAX_CLIPS")
[ -n "${SAMPLE_STEPS:-}" ] && data+=(-p steps "$SAMPLE_STEPS")
run() { local nb=$1; shift; echo "[paper] $(date -u +%H:%M:%S) $nb"; "$PY" -m papermill "experiments/$nb.ipynb" "$EXECUTED/$nb.ipynb" "${common[@]}" "$@"; }
t0=$(date +%s)
run baselines "${data[@]}" -p runs_dir "$RUNS_DIR/baselines" -y "runs: $BASE_RUNS"
run ablations "${data[@]}" -p runs_dir "$RUNS_DIR/ablations" -y "runs: $ABL_RUNS"
if [ "$SMOKE" = 1 ]; then run control "${data[@]}" -p runs_dir "$RUNS_DIR/control"
else run control "${data[@]}" -p run "${HSMAD_RUN:-$RUNS_DIR/baselines/hsmad}"; fi
run hypotheses -p results_dir "$RESULTS" -p out_dir "$RESULTS"
run figures -p results_dir "$RESULTS" -p figures_dir "$FIGURES"
echo "[paper] done in $(( $(date +%s) - t0 )) s: executed notebooks in $EXECUTED/, tables and $RESULTS/hypotheses.md in $RESULTS/, figures in $FIGURES/"
