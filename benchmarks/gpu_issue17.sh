#!/usr/bin/env bash
# The GPU calls behind benchmarks/results/TRAIN_GPU.md's issue-17 tables. On the GPU machine, from the
# checkout root, with the wheel folders of ../shared/gpu/fetch-wheels.sh peer in $WHEELS (default: here):
#   OUT=/some/dir bash benchmarks/gpu_issue17.sh 1|2
# Each mode runs in its own process; the raw JSON lines go to $OUT/callN.jsonl.
set -uo pipefail
W=${WHEELS:-.}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $W/.whl/*.whl
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site2 $W/.whl-peer/*.whl
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
OURS="env PYTHONPATH=$PWD:/tmp/site"
PEER="env PYTHONPATH=/tmp/site2:/tmp/site"
R=$OUT/call$1.jsonl
ours() { CAP_GIB=24 $OURS python3 benchmarks/bench_train_gpu.py "$@" 2>>$OUT/stderr.txt | grep '^{' | tee -a $R; }
peer() { CAP_GIB=24 $PEER python3 benchmarks/peers/qlora_peer.py "$@" 2>>$OUT/stderr.txt | grep '^{' | tee -a $R; }
trl_fast() { CAP_GIB=24 $OURS python3 benchmarks/peers/qlora_peer.py "$1" trl_fast "${@:2}" 2>>$OUT/stderr.txt | grep '^{' | tee -a $R; }
case "$1" in
1)
  $OURS python3 -c 'import torch, transformers, trl, peft; print(torch.__version__, transformers.__version__, trl.__version__, peft.__version__, torch.cuda.get_device_name(0))'
  ATTN_PROFILE_SIG=1 $OURS python3 benchmarks/bench_attention_gpu.py 8192 --flex 2>>$OUT/stderr.txt | tee $OUT/attention.jsonl
  $OURS python3 -m pytest -m gpu -x -q -s tests/core/test_training_gpu.py -k packed 2>&1 | tail -25 | tee $OUT/gpu_test.txt
  ours llama3-8b 12 2048 default
  peer llama3-8b unsloth_packed 12 2048
  trl_fast llama3-8b 12 2048
  ;;
2)
  trl_fast llama3-8b 12 2048
  peer llama3-8b unsloth_packed 12 2048
  ours llama3-8b 12 2048 default
  ours llama3-8b 12 2048 nodrop
  ours llama3.2-1b 12 2048 default
  peer llama3.2-1b unsloth_packed 12 2048
  ;;
esac
