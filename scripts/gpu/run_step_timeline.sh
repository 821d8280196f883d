#!/usr/bin/env bash
# A decode step's timeline, kernel by kernel, in the CUDA graph and under programmatic dependent launch:
# tpserve_bench built with scripts/gpu/timeline/timeline.patch (never merged; block 0 of every kernel
# stamps %globaltimer around its PdlWait), run with TPSERVE_PDL_TRACE=1, then scripts/gpu/step_timeline.py.
# Also the unpatched bench in the same call (the patch's own cost on the step).
# usage: scripts/gpu/run_step_timeline.sh OUTDIR BUNDLE
#   BUNDLE: tools/device_bundle.sh of tpserve_bench (unpatched) and tpserve_bench_timeline (patched), renamed so.
#   Build the patched one: git apply scripts/gpu/timeline/timeline.patch, bazel build --define=cuda_archs=sm_90a
#   //bench/cuda:tpserve_bench, copy it to tpserve_bench_timeline, git checkout the four files.
#   QUANTS (default "auto fp8"), CONFIG (default the 7B shape), ARGS (default batch 1, 512-token prompt).
set -u
source "$(dirname "$0")/gpu_tests.sh"
OUT=$1
unpack_bundle /tmp/tl "$2" "$OUT" || exit 1
CONFIG=${CONFIG:-tests/fixtures/shapes/qwen2-7b-instruct/config.json}
read -r -a F <<< "${ARGS:---batch 1 --prompt 512 --new 128}"
# 7B, batch 1: bf16 / FP8 GEMVs (1152, 896, 4736), AWQ int4 (288, 224, 2368), GPTQ int8 (576, 448; its gate_up
# is 4736 too); 128 the decode attention (tensor cores, one block an SM), 28 its merge.
LABELS=${LABELS:-1=norm_or_rope,1152=qkv,288=qkv,576=qkv,128=attention,28=merge,896=o_or_down,224=o_or_down,448=o_or_down,4736=gate_up_silu,2368=gate_up_silu,38016=lm_head}
for q in ${QUANTS:-auto fp8}; do
  echo "=== $q"
  echo "unpatched $(run_bench "$OUT/plain_$q.log" 120 "$B/tpserve_bench" --config "$CONFIG" "${F[@]}" --quantization "$q")"
  echo "patched, tracing $(TPSERVE_PDL_TRACE=1 run_bench "$OUT/trace_$q.log" 180 "$B/tpserve_bench_timeline" \
    --config "$CONFIG" "${F[@]}" --quantization "$q")"
  python3 scripts/gpu/step_timeline.py "$OUT/trace_$q.log" --labels "$LABELS" 2>&1 | tail -45
  xz -f "$OUT/trace_$q.log"
done
