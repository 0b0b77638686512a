#!/usr/bin/env bash
# The GPU training path on a lent accelerator, in one short command (docs/gpu.md has the figures):
#   1. meta-training throughput on the same data and model, --device cuda (bf16 autocast) against cpu;
#   2. the half-cheetah's CaDM schedule trained on the GPU, for as many rounds as SECONDS_CADM (330) seconds allow.
# Usage (repository root): OUT=out/device SECONDS_CADM=330 bash tools/device_train_check.sh
# Where the machine lacks packages (gymnasium, mujoco, mbmrl itself), wheels in .whl/ are installed first.
set -u
OUT=${OUT:-out/device}
mkdir -p "$OUT"
WHEELS=${WHEELS:-.whl}
if [ -d "$WHEELS" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl \
    && export PYTHONPATH=/tmp/site || exit 1
fi
export PYTHONUNBUFFERED=1
M="python3 -m mbmrl.export.cli"
DEV=${DEV:-cuda}
ITERS=${ITERS:-300}
{ nvidia-smi -L 2>&1; echo "cpus $(nproc)"; python3 -c "import torch, onnxruntime, sys
print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else '', 'onnxruntime', onnxruntime.__version__)"; } \
  2>&1 | tee "$OUT/env.txt"
C="--family halfcheetah --no-oracle --rollout-steps 10 --feature-dim 64 --mlp-width 200 --random-policy uniform"
rates() {  # tqdm's final rate per progress bar, and the run's own messages
  tr '\r' '\n' < "$1" | grep -E "100%\||mbmrl train|Error|error" | sed -E 's/, val_.*//' | uniq
}
for d in $DEV cpu; do
  t0=$(date +%s)
  timeout 200 $M train $C --n-tasks 10 --episodes-per-task 1 --iters "$ITERS" \
    --device "$d" --collect-envs 10 --out "/tmp/thr_$d" > "/tmp/thr_$d.log" 2>&1
  echo "== $d: exit $?, wall $(( $(date +%s) - t0 )) s" >> "$OUT/throughput.txt"
  rates "/tmp/thr_$d.log" >> "$OUT/throughput.txt"
done
timeout "${SECONDS_CADM:-330}" $M train $C --protocol cadm --device "$DEV" --collect-envs 10 --out /tmp/cadm \
  > /tmp/cadm.log 2>&1
echo "== cadm: exit $?" >> "$OUT/cadm.txt"
rates /tmp/cadm.log >> "$OUT/cadm.txt"
