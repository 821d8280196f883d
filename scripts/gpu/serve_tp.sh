#!/usr/bin/env bash
# The whole cluster on GPUs: `tpserve serve` with dummy weights at a real
# shape, a streaming chat request with curl, then bench/serve_bench.py.
# usage: scripts/gpu/serve_tp.sh TPSERVE_BIN SHAPE TP OUTDIR [extra serve flags]
set -u
BIN=$1; SHAPE=$2; TP=$3; OUT=$4; shift 4
export NCCL_NVLS_ENABLE=0
PORT=8000
start=$(date +%s.%N)
"$BIN" serve --model "tests/fixtures/shapes/$SHAPE" --load-format dummy \
  --tokenizer tests/fixtures/tiny-qwen2-chat --served-model-name "$SHAPE" \
  --tensor-parallel-size "$TP" --port $PORT "$@" > "$OUT/serve_$SHAPE.log" 2>&1 &
pid=$!
for _ in $(seq 1 2400); do
  grep -q "ready in" "$OUT/serve_$SHAPE.log" && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.25
done
grep -E "ready in|error" "$OUT/serve_$SHAPE.log" | head -5
grep -q "ready in" "$OUT/serve_$SHAPE.log" || { tail -30 "$OUT/serve_$SHAPE.log"; kill -TERM $pid; exit 1; }
echo "--- streaming chat with curl"
curl -sN "http://127.0.0.1:$PORT/v1/chat/completions" -H 'Content-Type: application/json' \
  -d "{\"model\": \"$SHAPE\", \"messages\": [{\"role\": \"user\", \"content\": \"你好，帮我介绍一下什么是大语言模型。\"}], \"stream\": true, \"temperature\": 0.9, \"top_p\": 0.7, \"top_k\": 20, \"max_tokens\": 32}" \
  > "$OUT/chat_$SHAPE.sse"
echo "chunks: $(grep -c '^data: {' "$OUT/chat_$SHAPE.sse"), done: $(grep -c '^data: \[DONE\]' "$OUT/chat_$SHAPE.sse")"
python3 bench/serve_bench.py --url "http://127.0.0.1:$PORT" --model "$SHAPE" --ttft-prompt 1024 \
  --batch 1,32 --new 128 --out "$OUT/bench_$SHAPE.json"
kill -TERM $pid
wait $pid
echo "serve exit code: $?"
