// tpserve's settings: one struct for every component, filled from an optional
// YAML file (--config) and command-line flags (flags win). Flag names follow
// vLLM's (`--tensor-parallel-size`, `--max-model-len`, ...); YAML keys are the
// same names with '-' or '_'. Unknown keys and bad values are rejected with a
// message naming the key and the accepted values.
#ifndef TPSERVE_COMMON_CONFIG_CONFIG_H_
#define TPSERVE_COMMON_CONFIG_CONFIG_H_

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace tpserve {

struct ServerConfig {
  // ---- model ----
  // Model folder (config.json, tokenizer, safetensors). Empty: the embedded
  // tiny chat model (tests/fixtures/tiny-qwen2-chat).
  std::string model;
  // Name clients use in "model"; defaults to the --model argument.
  std::string served_model_name;
  // Tokenizer folder; defaults to --model.
  std::string tokenizer;
  // auto | safetensors | dummy.
  std::string load_format = "auto";
  // auto | bfloat16 | float16 | float32.
  std::string dtype = "auto";
  // auto (the checkpoint's own format) | fp8 (E4M3 linear weights, from a
  // bf16 checkpoint at load time).
  std::string quantization = "auto";
  // auto (the compute dtype) | fp8 | fp8_e4m3 (paged KV cache in FP8 E4M3).
  std::string kv_cache_dtype = "auto";
  // Seed for dummy weights and for requests without a seed.
  uint64_t seed = 0;
  // 0: the model's max_position_embeddings.
  int max_model_len = 0;

  // ---- parallelism and device ----
  int tensor_parallel_size = 1;
  // auto | cpu | cuda.
  std::string device = "auto";
  double gpu_memory_utilization = 0.9;
  // KV cache budget for the CPU backend, GiB.
  double cpu_kv_cache_space = 1.0;
  // Tokens per KV block.
  int block_size = 16;
  // Disable CUDA graphs.
  bool enforce_eager = false;

  // ---- scheduler (router) ----
  int max_num_seqs = 256;
  // 0: max(8192, max_num_seqs) (see ResolvedMaxNumBatchedTokens).
  int max_num_batched_tokens = 0;
  int max_queued_requests = 1024;
  // Prompt tokens allowed waiting in the queue; 0: no bound.
  int64_t max_waiting_tokens = 0;
  bool enable_prefix_caching = true;
  // fcfs | priority.
  std::string scheduling_policy = "fcfs";

  // ---- network ----
  // Gateway HTTP address.
  std::string host = "0.0.0.0";
  int port = 8000;
  // Router gRPC listen port (router) / worker gRPC listen port (worker).
  int router_port = 50051;
  int worker_port = 50061;
  // Router: worker addresses host:port in rank order (repeatable --worker).
  std::vector<std::string> workers;
  // Gateway: router addresses host:port (repeatable --router).
  std::vector<std::string> routers;
  // Worker: this process's rank (-1: assigned by the router).
  int rank = -1;
  // Router/worker: Prometheus /metrics HTTP port; 0: disabled.
  int metrics_port = 0;
  // Router/worker: address their gRPC servers and /metrics listen on
  // (`serve` always uses 127.0.0.1).
  std::string internal_host = "0.0.0.0";
  // Internal mutual TLS between gateway, router and workers: CA bundle, this
  // component's certificate chain and private key (PEM files; all or none),
  // and an optional name to expect in peers' certificates instead of the
  // address's host.
  std::string internal_ssl_ca_certs;
  std::string internal_ssl_certfile;
  std::string internal_ssl_keyfile;
  std::string internal_ssl_target_name;

  // ---- gateway ----
  // Accepted API keys (repeatable --api-key); empty and no key file: open.
  std::vector<std::string> api_keys;
  // File with one API key per line.
  std::string api_key_file;
  // Largest request body in bytes.
  int64_t max_request_body_bytes = 16 << 20;
  // Largest accepted "n".
  int max_n = 16;
  // Most stop strings per request.
  int max_stop_strings = 16;
  // Chat template file overriding tokenizer_config.json's.
  std::string chat_template;
  // Most completions one request may ask for: prompts x n.
  int max_choices_per_request = 256;
  // Open client connections; at the cap the longest-idle one is closed.
  int max_connections = 2048;
  // A request's line and headers must arrive within this (ms).
  int http_header_timeout_ms = 10000;
  // A request's body must arrive within this after its head (ms).
  int http_body_timeout_ms = 60000;
  // Gateway TLS (PEM files): certificate chain and key; with ca_certs,
  // clients must present a certificate signed by one of those CAs.
  std::string ssl_certfile;
  std::string ssl_keyfile;
  std::string ssl_ca_certs;

  // ---- timeouts ----
  // Worker step RPC timeout (ms) before the router declares a rank failed.
  int worker_step_timeout_ms = 60000;
  // Worker handshake timeout (load, profile) in ms.
  int worker_init_timeout_ms = 600000;
  // Gateway/router: how long a SIGTERM waits for in-flight requests (ms)
  // before ending them with an error.
  int drain_timeout_ms = 30000;

  // ---- misc ----
  // trace | debug | info | warning | error.
  std::string log_level = "info";
};

// The step token budget the router schedules with and the workers size their
// buffers for: --max-num-batched-tokens, or when 0, max(8192,
// --max-num-seqs) whatever --max-model-len is. Chunked prefill makes a
// larger budget unnecessary: a lone 32k prompt in 8k chunks takes as long as
// in one step (docs/performance.md, "Chunked prefill"), while every running
// request's next token waits for the whole step, so 8k caps that stall; and
// every running sequence needs a token of the budget per step.
inline int ResolvedMaxNumBatchedTokens(const ServerConfig& config) {
  if (config.max_num_batched_tokens > 0) return config.max_num_batched_tokens;
  return std::max(8192, config.max_num_seqs);
}

}  // namespace tpserve

#endif  // TPSERVE_COMMON_CONFIG_CONFIG_H_
