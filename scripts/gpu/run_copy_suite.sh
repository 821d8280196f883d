#!/usr/bin/env bash
# Issue 24's attention-at-a-distance fidelity in one device call: trains the copy checkpoint
# (scripts/gpu/copy_task.py) at each shape and compares tpserve (prefill kernel and split-KV decode) with HF
# transformers on 2k-32k token prompts (scripts/gpu/copy_compare.py); prints the table last.
# usage: [SHAPES=a,b] [LENGTHS=2048,8192,32000] [TRAIN_STEPS=1000] [MAX_TRAIN_S=s[,s]] [LR=x[,x]] [RECIPE=name] [TINY_S=s] [FINETUNE=long8k] [PER_LENGTH=4] \
#          scripts/gpu/run_copy_suite.sh OUTDIR [BUNDLE]
#   BUNDLE (default .devbin/cuda/bundle.tar.xz): TPSERVE_BUNDLE=1 scripts/gpu/stage.sh //bench/cuda:tpserve_gpu_check
# The Python files are read from this script's folder, so a staged copy of scripts/gpu runs as well.
set -u
OUT=$1
BUNDLE=${2:-.devbin/cuda/bundle.tar.xz}
HERE=$(dirname "$0")
mkdir -p /tmp/cp "$OUT" && tar -C /tmp/cp -xJf "$BUNDLE" || exit 1
export LD_LIBRARY_PATH=/tmp/cp/cuda/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib:${LD_LIBRARY_PATH:-}
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1
df -h /dev/shm /tmp | tail -2
args=(--bin /tmp/cp/cuda/bin/tpserve_gpu_check --out "$OUT/copy.json"
      --shapes "${SHAPES:-qwen2-0.5b-instruct,qwen2-7b-instruct}" --lengths "${LENGTHS:-2048,8192,32000}"
      --train-steps "${TRAIN_STEPS:-1000}" --per-length "${PER_LENGTH:-4}")
[[ -n "${MAX_TRAIN_S:-}" ]] && args+=(--max-train-s "$MAX_TRAIN_S")
[[ -n "${LR:-}" ]] && args+=(--lr "$LR")
[[ -n "${RECIPE:-}" ]] && args+=(--recipe "$RECIPE")
[[ -n "${TINY_S:-}" ]] && args+=(--tiny-s "$TINY_S")
[[ -n "${FINETUNE:-}" ]] && args+=(--finetune "$FINETUNE")
python3 "$HERE/copy_compare.py" "${args[@]}" 2>&1 | tee "$OUT/copy.log" |
  grep -E 'copy train|^error|Error|Traceback|^\{"shape"|^shape|^qwen'
