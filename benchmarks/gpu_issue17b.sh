#!/usr/bin/env bash
# Issue 17, second session: the memory plan (core/training/memory_plan.py) against Unsloth, same call.
# On the GPU machine, from the checkout root, with the wheel folders of ../shared/gpu/fetch-wheels.sh peer in
# $WHEELS (default: here):
#   OUT=/some/dir bash benchmarks/gpu_issue17b.sh 3|4|5        (DRY=1: print the plan of the call, run nothing)
# Each mode runs in its own process under its own `timeout`; a mode that would start after the call's
# deadline ($DEADLINE seconds after the start, default 540) is skipped and says so. Raw JSON lines go to
# $OUT/callN.jsonl (ours and the peers' together).
set -uo pipefail
START=$(date +%s)
DEADLINE=${DEADLINE:-540}
W=${WHEELS:-.}
DRY=${DRY:-}
R=$OUT/call$1.jsonl
if [ -z "$DRY" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $W/.whl/*.whl $(ls $W/.whl-extra/*.whl 2>/dev/null)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site2 $W/.whl-peer/*.whl
fi
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false CAP_GIB=24

# step SECONDS LABEL ENV... -- COMMAND...: run COMMAND with ENV under `timeout SECONDS` if the deadline allows
step() {
  local limit=$1 label=$2
  shift 2
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  local now=$(( $(date +%s) - START ))
  if [ $(( now + limit / 3 )) -gt "$DEADLINE" ]; then
    echo "{\"mode\": \"$label\", \"skipped\": \"deadline ($now s of $DEADLINE s used)\"}" | tee -a "$R"
    return 0
  fi
  local left=$(( DEADLINE - now ))
  [ "$limit" -gt "$left" ] && limit=$left
  echo "== $label (t=${now}s, limit ${limit}s)" >&2
  if [ -n "$DRY" ]; then echo "env ${envs[*]} timeout $limit $*"; return 0; fi
  env "${envs[@]}" timeout "$limit" "$@" 2>>"$OUT/stderr${LANE:-}.txt" | grep --line-buffered '^{"' | tee -a "$R"
  local rc=${PIPESTATUS[0]}
  [ "$rc" = 124 ] && echo "{\"mode\": \"$label\", \"error\": \"timeout after ${limit}s\"}" | tee -a "$R"
  return 0
}
OURS="PYTHONPATH=$PWD:/tmp/site"
PEER="PYTHONPATH=/tmp/site2:/tmp/site"
LONG="FIXED_LEN=1 BS=1 GA=1"
# build the random-weight models once, before two lanes would both start writing the same folder
models() {
  [ -n "$DRY" ] && return 0
  for m in "$@"; do
    env $OURS python3 -c "import sys; sys.path.insert(0, 'benchmarks/peers'); from qlora_peer import make_model; make_model('$m', '/tmp/model_$m')"
  done
}
ours() { step "$1" "ours $2 $4 $5" $OURS ${EXTRA:-} -- python3 benchmarks/bench_train_gpu.py "${@:2}"; }
peer() { step "$1" "$3 $2 $5" $PEER ${EXTRA:-} -- python3 benchmarks/peers/qlora_peer.py "${@:2}"; }

case "$1" in
3)
  if [ -z "$DRY" ]; then
    env $OURS python3 -c 'import torch, transformers, trl, peft; print(torch.__version__, transformers.__version__, trl.__version__, peft.__version__, torch.cuda.get_device_name(0))'
    env $OURS timeout 150 python3 -m pytest -o addopts="" -m gpu -x -q -s tests/core/test_training_gpu.py -k "packed or memory_plan" > "$OUT/gpu_test.txt" 2>&1
    rc=$?
    tail -30 "$OUT/gpu_test.txt"
    [ "$rc" = 0 ] || { echo "gpu tests failed (rc $rc): stopping the call"; exit 1; }
  fi
  ours 150 llama3-8b 12 2048 default
  peer 150 llama3-8b unsloth_packed 12 2048
  ours 150 llama3-8b 12 2048 default
  EXTRA="$LONG" ours 330 llama3-8b 3 131072 default
  EXTRA="$LONG" ours 120 llama3-8b 3 65536 default
  ;;
4)
  EXTRA="$LONG" ours 290 llama3-8b 3 131072 default
  EXTRA="$LONG" peer 100 llama3-8b unsloth_packed 3 65536
  EXTRA="$LONG" ours 90 llama3-8b 3 65536 default
  ;;
5)
  EXTRA="$LONG" peer 90 llama3-8b unsloth_packed 3 32768
  EXTRA="$LONG" ours 90 llama3-8b 3 32768 default
  ours 60 llama3.2-1b 12 2048 default
  peer 60 llama3.2-1b unsloth_packed 12 2048
  peer 150 qwen3-8b unsloth_packed 12 2048
  ours 150 qwen3-8b 12 2048 default
  ;;
6)  # nvidia-h200-x2: two independent lanes, one per GPU (each process capped at 24 GiB of its own GPU)
  models llama3-8b llama3.2-1b  # (call 6 itself ran without this: both lanes started on llama3-8b at once)
  (
    export CUDA_VISIBLE_DEVICES=0 LANE=_gpu0; R=$OUT/call6_gpu0.jsonl
    EXTRA="$LONG" ours 430 llama3-8b 3 131072 default
    ours 70 llama3.2-1b 12 2048 default
    peer 70 llama3.2-1b unsloth_packed 12 2048
  ) &
  (
    export CUDA_VISIBLE_DEVICES=1 LANE=_gpu1; R=$OUT/call6_gpu1.jsonl
    EXTRA="$LONG" peer 110 llama3-8b unsloth_packed 3 32768
    EXTRA="$LONG" ours 90 llama3-8b 3 32768 default
    EXTRA="$LONG" peer 120 llama3-8b unsloth_packed 3 65536
    EXTRA="$LONG" ours 100 llama3-8b 3 65536 default
    peer 70 llama3.2-1b unsloth_packed 12 2048
    ours 70 llama3.2-1b 12 2048 default
  ) &
  wait
  ;;
7)  # nvidia-h200-x2, issue 12 then: GPU 0 one card on the 32B shape (4 x 2 micro-batches) beside Unsloth at
    # long context on GPU 1; then benchmarks/gpu_issue12.sh (the CLI smoke with stop/resume, the split run)
  (
    export LANE=_gpu0; R=$OUT/call7_gpu0.jsonl
    step 230 "ours qwen2.5-32b one card" $OURS ONE_GPU=0 SKIP_MANY=1 BS=4 GA=2 RUN_TIMEOUT_S=200 WHETSTONE_GPU_CAP_GIB=24 \
      -- python3 benchmarks/bench_fsdp_gpu.py qwen2.5-32b 6 2048
  ) &
  (  # Unsloth's long-context runs again: call 6's harness counted 0 tokens/s for them (see qlora_peer.py)
    export CUDA_VISIBLE_DEVICES=1 LANE=_gpu1; R=$OUT/call7_gpu1.jsonl
    EXTRA="$LONG" peer 100 llama3-8b unsloth_packed 3 32768
    EXTRA="$LONG" peer 120 llama3-8b unsloth_packed 3 65536
  ) &
  wait
  ;;
8)  # nvidia-h200-x2: the Qwen3-8B shape against Unsloth in both orders (one order per GPU), then Unsloth at
    # 32k (call 7 ran out of time for it) beside ours at 64k with the reference attention (one SDPA per row)
  models qwen3-8b llama3-8b
  (
    export CUDA_VISIBLE_DEVICES=0 LANE=_gpu0; R=$OUT/call8_gpu0.jsonl
    peer 150 qwen3-8b unsloth_packed 12 2048
    ours 120 qwen3-8b 12 2048 default
    EXTRA="$LONG" peer 150 llama3-8b unsloth_packed 3 32768
  ) &
  (
    export CUDA_VISIBLE_DEVICES=1 LANE=_gpu1; R=$OUT/call8_gpu1.jsonl
    ours 120 qwen3-8b 12 2048 default
    peer 150 qwen3-8b unsloth_packed 12 2048
    EXTRA="$LONG" ours 130 llama3-8b 3 65536 sdpa
  ) &
  wait
  ;;
9)  # nvidia-h200-x2: a row holding one document now takes plain causal SDPA (packed_attention.py): the GPU
    # numerics tests, then 32k/64k on GPU 0 beside 128k on GPU 1
  models llama3-8b
  (
    export CUDA_VISIBLE_DEVICES=0 LANE=_gpu0; R=$OUT/call9_gpu0.jsonl
    if [ -z "$DRY" ]; then
      env $OURS timeout 150 python3 -m pytest -o addopts="" -m gpu -q -s tests/core/test_training_gpu.py -k "packed or memory_plan" > "$OUT/gpu_test.txt" 2>&1
      echo "gpu tests rc=$?" >> "$OUT/gpu_test.txt"
    fi
    EXTRA="$LONG" ours 100 llama3-8b 3 65536 default
    EXTRA="$LONG" ours 60 llama3-8b 3 32768 default
  ) &
  (
    export CUDA_VISIBLE_DEVICES=1 LANE=_gpu1; R=$OUT/call9_gpu1.jsonl
    EXTRA="$LONG" ours 300 llama3-8b 3 131072 default
  ) &
  wait
  ;;
esac
echo "call $1 done after $(( $(date +%s) - START )) s"
