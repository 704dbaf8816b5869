#!/usr/bin/env bash
# The GPU call behind benchmarks/results/TRAIN_MULTI_GPU.md's sharded-QLoRA table (issue 12), on
# nvidia-h200-x2, from the checkout root, with ../shared/gpu/fetch-wheels.sh's .whl in $WHEELS (default: ..),
# accelerate 1.15 in .whl-extra/, and a chat tokenizer
# folder in .tok/:
#   OUT=/some/dir bash benchmarks/gpu_issue12.sh [SHAPE] [STEPS]
# 1. The product path on a tiny NF4 model: `whetstone train --gpus 2 --shard` (accelerate FSDP2), stopped
#    after step 3 and resumed to step 30, then its adapter read back by PEFT onto the base as Evaluate/Export do.
# 2. benchmarks/bench_fsdp_gpu.py SHAPE (default qwen2.5-32b): one 24 GiB card, then 2 x 24 GiB split
#    (env SKIP_ONE=1 BS=4 GA=2: the split run alone, as in gpu_issue17b.sh 7 after its one-card lane).
set -uo pipefail
W=${WHEELS:-..}
SHAPE=${1:-qwen2.5-32b}
STEPS=${2:-6}
rm -rf /tmp/site /tmp/nf4_tiny /tmp/run_tiny
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $W/.whl/*.whl .whl-extra/accelerate-*.whl
export PYTHONPATH=$PWD:/tmp/site HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
versions() { python3 -c 'import torch, transformers, trl, peft, accelerate, bitsandbytes as b; print("versions", torch.__version__, transformers.__version__, trl.__version__, peft.__version__, accelerate.__version__, b.__version__, torch.cuda.device_count(), torch.cuda.get_device_name(0))' 2>&1 | grep -v kernels; }
versions | tee -a $OUT/versions.txt
python3 benchmarks/bench_fsdp_gpu.py --build tiny /tmp/nf4_tiny cuda 2>>$OUT/stderr.txt
cp .tok/* /tmp/nf4_tiny/
# The product path with Stop and Resume: 30 steps, a checkpoint every 2; Stop is asked (as the Train page's Stop
# button asks: RunFolder.request_stop) once step 3 is in the events; then `whetstone train --resume` to the end.
smoke() {
  rm -rf /tmp/run_tiny
  local run="timeout 200 python3 -m core.cli train --run-dir /tmp/run_tiny --json --quiet"
  WHETSTONE_HOME=/tmp/wh WHETSTONE_GPU_CAP_GIB=24 $run --data resources/sample_dataset.jsonl --model /tmp/nf4_tiny \
    --quant 4bit --gpus 2 --shard --max-steps 30 --eval-steps 30 --save-steps 2 > $OUT/smoke_first.json 2>>$OUT/stderr.txt &
  local pid=$!
  python3 - <<'PY'
import json, time
from pathlib import Path
from core.runs.folder import RunFolder
events = Path("/tmp/run_tiny/events.jsonl")
for _ in range(1500):
    lines = events.read_text().splitlines() if events.exists() else []
    if any(json.loads(x).get("type") == "step" and json.loads(x).get("step", 0) >= 3 for x in lines):
        RunFolder(Path("/tmp/run_tiny")).request_stop()
        print("stop asked after step 3")
        break
    time.sleep(0.1)
PY
  wait $pid
  echo "first part rc=$?"; cat $OUT/smoke_first.json
  WHETSTONE_HOME=/tmp/wh WHETSTONE_GPU_CAP_GIB=24 $run --resume > $OUT/smoke_summary.json 2>>$OUT/stderr.txt
  local rc=$?
  echo "resume rc=$rc"; cat $OUT/smoke_summary.json
  cp /tmp/run_tiny/events.jsonl $OUT/smoke_events.jsonl 2>/dev/null
  grep -h '"sharded"\|"type": *"done"\|"type": *"error"\|esum\|heckpoint' /tmp/run_tiny/events.jsonl | cut -c1-300
  grep -h '"type": *"step"' /tmp/run_tiny/events.jsonl | cut -c1-120
  [ $rc -ne 0 ] && tail -40 /tmp/run_tiny/logs/worker.log | cut -c1-300
  return $rc
}
smoke
python3 - <<'PY' 2>&1 | grep -v kernels | tee $OUT/smoke_adapter.txt
import torch
from peft import PeftModel
from core.loader import load_base_model, quantization_config
from safetensors.torch import load_file
w = load_file("/tmp/run_tiny/adapter/adapter_model.safetensors")
print("adapter tensors", len(w), "shapes ok", all(t.dim() == 2 for t in w.values()),
      "max|B|", max(float(t.abs().max()) for k, t in w.items() if "lora_B" in k))
base = load_base_model("/tmp/nf4_tiny", device="cuda", dtype=torch.bfloat16, quantization=quantization_config("4bit", torch.bfloat16))
m = PeftModel.from_pretrained(base, "/tmp/run_tiny/adapter")
x = torch.tensor([[5, 6, 7, 8]], device="cuda")
with torch.no_grad():
    tuned = m(x).logits
    with m.disable_adapter():
        plain = m(x).logits
print("adapter read back by PEFT; changes the logits by", float((tuned - plain).abs().max()))
PY
CAP_GIB=24 RUN_TIMEOUT_S=${RUN_TIMEOUT_S:-220} ONE_GPU=0 python3 benchmarks/bench_fsdp_gpu.py $SHAPE $STEPS 2048 2>>$OUT/stderr.txt | grep '^{' | tee $OUT/fsdp_$SHAPE.jsonl
df -h /tmp | tail -1; free -g | head -2
