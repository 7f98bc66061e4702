#!/usr/bin/env bash
# GPU check (issue 20): prerequisites in seconds, then within a time budget (default 5 min) on one GPU:
# SICSRec and the baselines at d 256 on the demo and Bili_Food, SASRec again with --amp bf16 --compile, one
# training epoch of SASRec on the CPU for the samples/s ratio, and the app's Train-tab job path
# (sicsrec.app.jobs.TrainJob) on the GPU.
# Prints targets/s GPU vs CPU and the test metrics of every model.
#
# Usage: bash bench/gpu_check.sh [--data-root DIR] [--small DATA] [--out DIR] [--budget-s S] [--cpu] [--quick]
#                                [-- TRAIN ARGS]
#   --data-root  folder holding ninerec_bili_text/Bili_Food [../shared/data]
#   --small      the small dataset run first and by the Train-tab job [demo]
#   --cpu        run the same path on the CPU (no GPU needed): a dry run of the script itself
#   --quick      demo only, d 16, one epoch (with --cpu: the test suite's run)
#   TRAIN ARGS   passed to every `python -m sicsrec compare` (e.g. --lr 5e-4)
# Without a CUDA GPU (and without --cpu) or without the data it prints why and exits 0: nothing to check.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python}"
DATA_ROOT="$ROOT/../shared/data"
SMALL=demo
OUT=""
BUDGET=300
DEVICE=cuda
QUICK=0
EXTRA=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --data-root) DATA_ROOT="$2"; shift 2 ;;
        --small) SMALL="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --budget-s) BUDGET="$2"; shift 2 ;;
        --cpu) DEVICE=cpu; shift ;;
        --quick) QUICK=1; shift ;;
        --) shift; EXTRA=("$@"); break ;;
        *) echo "gpu_check: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False
cd "$ROOT"
START=$SECONDS

# --- prerequisites (seconds) ------------------------------------------------------------------------------
if ! "$PY" -c "import torch, sicsrec" 2>/dev/null; then
    echo "gpu_check: '$PY' cannot import torch and sicsrec; install requirements.txt first (or set PYTHON=...)"
    exit 0
fi
if [[ "$DEVICE" == cuda ]]; then
    if ! GPU="$("$PY" -c "import sys, torch
if not torch.cuda.is_available():
    sys.exit(f'torch {torch.__version__} (CUDA build: {torch.version.cuda or \"none\"}) sees no CUDA GPU')
print(torch.cuda.get_device_name(0))" 2>&1)"; then
        echo "gpu_check: skipped: $GPU; nothing to check (--cpu runs the same path on the CPU)"
        exit 0
    fi
    echo "gpu_check: GPU: $GPU"
fi
DATASETS=("small=$SMALL")
if [[ $QUICK == 0 ]]; then
    FOOD="$DATA_ROOT/ninerec_bili_text/Bili_Food"
    if [[ ! -d "$FOOD" ]]; then
        echo "gpu_check: skipped: no Bili_Food under --data-root ($FOOD); nothing to check"
        exit 0
    fi
    DATASETS+=("food=$FOOD")
fi
OUT="${OUT:-$(mktemp -d -t gpu_check.XXXXXX)}"
mkdir -p "$OUT"
if [[ $QUICK == 1 ]]; then
    TRAIN=(--hidden 16 --max-epochs 1 --max-len 20)
    MODELS=sasrec,id_control  # step 2's path without a feature extraction
else
    TRAIN=(--hidden 256 --max-epochs 20 --patience 5)
    MODELS=sasrec,content,sicsrec
fi
TRAIN+=("${EXTRA[@]}")
echo "gpu_check: device $DEVICE, budget ${BUDGET}s, runs in $OUT"

left() { echo $((BUDGET - (SECONDS - START))); }

# One compare run within what is left of the budget; a run cut short keeps its finished models.
compare() {  # name data device models seconds [more train args]
    local name="$1" data="$2" device="$3" models="$4" cap="$5"
    shift 5
    if ((cap < 10)); then echo "gpu_check: $name: no time left in the budget, skipped"; return 0; fi
    timeout --signal=INT "$cap" "$PY" -m sicsrec compare --data "$data" --out "$OUT/$name" --models "$models" \
        --device "$device" "${TRAIN[@]}" "$@" </dev/null >"$OUT/$name.log" 2>&1 \
        || echo "gpu_check: $name stopped (exit $?; budget ${cap}s); see $OUT/$name.log"
}

# --- the runs ---------------------------------------------------------------------------------------------
for entry in "${DATASETS[@]}"; do
    name="${entry%%=*}" data="${entry#*=}"
    if [[ "$DEVICE" != cpu ]]; then  # the CPU reference: one epoch of SASRec, for targets/s
        compare "$name-cpuref" "$data" cpu sasrec "$(( $(left) / 6 ))" --max-epochs 1
    fi
    compare "$name-$DEVICE" "$data" "$DEVICE" "$MODELS" "$(( $(left) / (${#DATASETS[@]} + 1) ))"
    if [[ "$DEVICE" == cuda && $QUICK == 0 ]]; then  # the speed switches: do bf16 autocast + torch.compile help?
        compare "$name-fast-$DEVICE" "$data" "$DEVICE" sasrec "$(( $(left) / (${#DATASETS[@]} + 2) ))" \
            --amp bf16 --compile
    fi
done

# The app's Train-tab job path (TrainJob: prepare, run_experiment with progress events, cancel) on the device.
JOB_CAP=$(left)
if ((JOB_CAP >= 10)); then
    timeout --signal=INT "$JOB_CAP" "$PY" - "$OUT/job" "$DEVICE" "$QUICK" "$SMALL" >"$OUT/job.log" 2>&1 <<'EOF' || true
import json, sys
from pathlib import Path
from sicsrec.app.jobs import TrainJob
from sicsrec.config import DataConfig, ModelConfig, RunConfig, TrainConfig

out, device, quick, data = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "1", sys.argv[4]
model = ModelConfig(hidden=16, ffn=16, max_len=20) if quick else ModelConfig()
cfg = RunConfig("sasrec", DataConfig(path=data, max_len=model.max_len), model_cfg=model,
                train=TrainConfig(max_epochs=1 if quick else 10, patience=5, device=device))
job = TrainJob(cfg, ("sasrec",), out, device=device)
job.run()
events = {type(e).__name__ for e in job.events}
print(json.dumps({"error": job.error, "events": sorted(events),
                  "test": job.results.models["sasrec"].test if job.results else None}))
EOF
fi

# --- report -----------------------------------------------------------------------------------------------
"$PY" - "$OUT" "$DEVICE" <<'EOF'
import json, sys
from pathlib import Path

out, device = Path(sys.argv[1]), sys.argv[2]

def rate(run: Path, model: str) -> float | None:
    """Mean training targets/s of a model's last fit, from its checkpoint."""
    try:
        fits = json.loads((run / "checkpoints" / model / "config.json").read_text())["fits"]
    except (OSError, KeyError, ValueError):
        return None
    hist = fits[-1]["history"]
    return sum(h["samples_per_s"] for h in hist) / len(hist) if hist else None

print(f"\n| run | model | targets/s | vs CPU | epochs | test HR@10 | test NDCG@10 |\n|---|---|---|---|---|---|---|")
for res in sorted(out.glob(f"*-{device}/results.json")):
    run = res.parent
    name = run.name.split("-")[0]  # small | food
    cpu = rate(out / f"{name}-{'cpu' if device == 'cpu' else 'cpuref'}", "sasrec")
    for model, m in json.loads(res.read_text())["models"].items():
        if model == "pop":
            continue
        r = rate(run, model)
        ratio = f"{r / cpu:.1f}x" if r and cpu and model == "sasrec" else ""
        print(f"| {run.name} | {model} | {r or 0:,.0f} | {ratio} | {m.get('epochs', 0)} | "
              f"{m['test']['hr@10']:.4f} | {m['test']['ndcg@10']:.4f} |")
job = out / "job.log"
if job.exists():
    last = job.read_text().strip().splitlines()[-1:] or ["(no output)"]
    print(f"\nTrainJob ({device}): {last[0]}")
EOF
echo "gpu_check: done in $((SECONDS - START))s"
