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
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $W/.whl/*.whl
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
  env "${envs[@]}" timeout "$limit" "$@" 2>>"$OUT/stderr.txt" | grep --line-buffered '^{"' | tee -a "$R"
  local rc=${PIPESTATUS[0]}
  [ "$rc" = 124 ] && echo "{\"mode\": \"$label\", \"error\": \"timeout after ${limit}s\"}" | tee -a "$R"
  return 0
}
OURS="PYTHONPATH=$PWD:/tmp/site"
PEER="PYTHONPATH=/tmp/site2:/tmp/site"
LONG="FIXED_LEN=1 BS=1 GA=1"
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
esac
echo "call $1 done after $(( $(date +%s) - START )) s"
