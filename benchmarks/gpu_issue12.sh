#!/usr/bin/env bash
# The GPU call behind benchmarks/results/TRAIN_MULTI_GPU.md's sharded-QLoRA table (issue 12), on
# nvidia-h200-x2, from the checkout root, with ../shared/gpu/fetch-wheels.sh's .whl in $WHEELS (default: ..),
# accelerate 1.15 in .whl-extra/, and a chat tokenizer
# folder in .tok/:
#   OUT=/some/dir bash benchmarks/gpu_issue12.sh [SHAPE] [STEPS]
# 1. The product path on a tiny NF4 model: `whetstone train --gpus 2 --shard` (accelerate FSDP2, 3 steps),
#    then its adapter read back by PEFT onto the base as Evaluate/Export do.
# 2. benchmarks/bench_fsdp_gpu.py SHAPE (default qwen2.5-32b): one 24 GiB card, then 2 x 24 GiB split.
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
smoke() {
  rm -rf /tmp/run_tiny
  WHETSTONE_HOME=/tmp/wh WHETSTONE_GPU_CAP_GIB=24 timeout 200 python3 -m core.cli train \
    --data resources/sample_dataset.jsonl --run-dir /tmp/run_tiny --model /tmp/nf4_tiny --quant 4bit \
    --gpus 2 --shard --max-steps 3 --eval-steps 3 --save-steps 3 --json --quiet > $OUT/smoke_summary.json 2>>$OUT/stderr.txt
  local rc=$?
  echo "smoke rc=$rc"; cat $OUT/smoke_summary.json
  cp /tmp/run_tiny/events.jsonl $OUT/smoke_events.jsonl 2>/dev/null
  grep -h '"sharded"\|"type": *"step"\|"type": *"done"\|"type": *"error"' /tmp/run_tiny/events.jsonl | cut -c1-400
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
CAP_GIB=24 RUN_TIMEOUT_S=${RUN_TIMEOUT_S:-220} python3 benchmarks/bench_fsdp_gpu.py $SHAPE $STEPS 2048 2>>$OUT/stderr.txt | grep '^{' | tee $OUT/fsdp_$SHAPE.jsonl
df -h /tmp | tail -1; free -g | head -2
