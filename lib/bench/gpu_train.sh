#!/usr/bin/env bash
# The paper recipe on one CUDA GPU, in one command:
#   1. the fp32 / bf16 throughput and MFU table of lib.bench.train_bench (--tables gpu);
#   2. next-item trainings of the paper preset on the prepared data (notebook 01), side by side on the one GPU,
#      each capped at MAX_TIME of fitting (trainer.max_time; the best checkpoint is then tested):
#      SASRec in bf16 and in fp32 on both data sets, BERT4Rec in bf16 on both, and SASRec 256-d (1 block) in bf16.
# Logs, metrics and CSV curves go to $OUT/gpu_runs.tgz, the tables to $OUT/summary.txt and stdout.
#   OUT=gpu_out bash lib/bench/gpu_train.sh [MAX_TIME, DD:HH:MM:SS, default 00:00:05:00]
# ACCEL=cpu RUNS="s_bf16" runs a subset on the CPU (a check of this script); BENCH=0 skips the table; EXTRA_RUNS=
# "name:override override;name2:..." adds runs (fp32, or a trainer.precision among the overrides) and RUNS="" keeps
# only those. Runs go to run names gpu_<name>, so they never resume a CPU run of the same config.
# deterministic=false: CUDA's deterministic kernels are optional for a timing and quality check, and some raise
# without CUBLAS_WORKSPACE_CONFIG.
set -u
OUT=${OUT:-gpu_out}
MAX_TIME=${1:-00:00:05:00}
PY=${PY:-python3}
ACCEL=${ACCEL:-gpu}
RUNS=${RUNS-s_bf16 s_fp32 b_bf16 b_fp32 s_b4r b_b4r s_w256 b_w256}
EXTRA_RUNS=${EXTRA_RUNS:-}
BENCH=${BENCH:-1}
WORK=$(mktemp -d)
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || echo "no nvidia-smi"; } \
  > "$WORK/gpu.txt" 2>&1
$PY -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__)" >> "$WORK/gpu.txt"
$PY -c "import lib.train.run, lib.bench.train_bench" || exit 3
if [ "$BENCH" = 1 ]; then
  $PY -m lib.bench.train_bench --tables gpu > "$WORK/bench_gpu.txt" 2>&1 || echo "bench failed: see bench_gpu.txt"
else
  echo "(table skipped: BENCH=0)" > "$WORK/bench_gpu.txt"
fi

w256='+model.sizes.w256={hidden:256,layers:1,heads:1}'
declare -A args=(
  [s_bf16]="trainer.dataset=sports model.arch=sasrec trainer.precision=bf16-mixed"
  [s_fp32]="trainer.dataset=sports model.arch=sasrec trainer.precision=32"
  [b_bf16]="trainer.dataset=beauty model.arch=sasrec trainer.precision=bf16-mixed"
  [b_fp32]="trainer.dataset=beauty model.arch=sasrec trainer.precision=32"
  [s_b4r]="trainer.dataset=sports model.arch=bert4rec trainer.precision=bf16-mixed"
  [b_b4r]="trainer.dataset=beauty model.arch=bert4rec trainer.precision=bf16-mixed"
  [s_w256]="trainer.dataset=sports model.arch=sasrec trainer.precision=bf16-mixed $w256 model.size=w256"
  [b_w256]="trainer.dataset=beauty model.arch=sasrec trainer.precision=bf16-mixed $w256 model.size=w256"
)
IFS=';' read -ra extra <<< "$EXTRA_RUNS"
for spec in "${extra[@]}"; do
  args[${spec%%:*}]="${spec#*:}"
  RUNS="$RUNS ${spec%%:*}"
done
for name in $RUNS; do
  ov=()
  # fp32 on a GPU scores the item table unpadded: there the padding to 64 rows cost 6-15% (conf/model/default.yaml)
  lm=""
  [[ "$ACCEL" = gpu && "${args[$name]}" != *bf16* ]] && lm=model.logit_multiple=1
  for a in ${args[$name]} $lm trainer.accelerator=$ACCEL trainer.deterministic=false trainer.ckpt_every_n_steps=0 \
           trainer.max_time=$MAX_TIME trainer.run_name=gpu_$name; do ov+=(-o "$a"); done
  $PY -m lib.train --preset paper "${ov[@]}" --out "$WORK/$name.json" > "$WORK/$name.log" 2>&1 &
done
wait

$PY - "$WORK" $RUNS <<'PY' | tee "$WORK/summary.txt"
import json, sys
from pathlib import Path
import pandas as pd
work, names = Path(sys.argv[1]), sys.argv[2:]
print(open(work / "gpu.txt").read().strip())
print("\n".join(open(work / "bench_gpu.txt").read().splitlines()[-8:]))
rows = []
for name in names:
    f = work / f"{name}.json"
    if not f.is_file():
        rows.append({"run": name, "stopped_by": "FAILED: " + open(work / f"{name}.log").read()[-300:].replace("\n", " ")})
        continue
    m = json.loads(f.read_text())
    curve = pd.concat(pd.read_csv(p) for p in sorted(Path(m["run_dir"]).glob("csv/version_*/metrics.csv")))
    val = curve.dropna(subset=["val/history_removed/ndcg@10"])
    rows.append({"run": name, "epochs": m["epochs"], "stopped_by": m["stopped_by"],
                 "s/epoch": float(val["time/wall_s"].max()) / max(1, len(val)),
                 "best val NDCG@10": m["best/val/history_removed/ndcg@10"],
                 "best epoch": int(val.loc[val["val/history_removed/ndcg@10"].idxmax(), "epoch"]),
                 "test NDCG@10": m["test/history_removed/ndcg@10"], "test HR@10": m["test/history_removed/hr@10"]})
pd.set_option("display.width", 250)
print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
PY
ckpts=$($PY -c "from lib.config import compose; print(compose('paper', []).paths.checkpoints)")
tar czf "$OUT/gpu_runs.tgz" -C / "${WORK#/}" $(for n in $RUNS; do d="$ckpts/gpu_$n"; [ -d "$d" ] && \
  find "$(realpath "$d")" -name '*.csv' -o -name '*.json' | sed 's|^/||'; done) 2>/dev/null
cp "$WORK/summary.txt" "$WORK/bench_gpu.txt" "$OUT/"
