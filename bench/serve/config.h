// Settings of `tpserve bench serve`. Flag names and defaults are vLLM's
// `vllm bench serve` ones, so a command line written for vLLM works here.
#ifndef TPSERVE_BENCH_SERVE_CONFIG_H_
#define TPSERVE_BENCH_SERVE_CONFIG_H_

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace tpserve::bench {

struct BenchConfig {
  // ---- server ----
  // openai | vllm (completions) | openai-chat (chat); must match --endpoint.
  std::string backend = "openai";
  // e.g. http://10.0.0.5:8000; empty: http://host:port.
  std::string base_url;
  std::string host = "127.0.0.1";
  int port = 8000;
  std::string endpoint = "/v1/completions";
  // Model name; empty: the first model the server lists at /v1/models.
  std::string model;
  // Name sent in "model" when it differs from --model.
  std::string served_model_name;
  // Tokenizer folder; empty: --model if it is a folder, else the embedded
  // Qwen2 tokenizer (every model tpserve serves uses it).
  std::string tokenizer;
  // Bearer token; empty: $OPENAI_API_KEY; both empty: no Authorization header.
  std::string api_key;
  // Extra request headers, KEY=VALUE.
  std::vector<std::string> headers;
  // Seconds the first test request may retry while the server starts; 0 skips it.
  int ready_check_timeout_sec = 600;

  // ---- workload ----
  // random | sharegpt | prefix-repetition.
  std::string dataset_name = "random";
  std::string dataset_path;
  int num_prompts = 1000;
  uint64_t seed = 0;
  int random_input_len = 1024;
  int random_output_len = 128;
  double random_range_ratio = 0.0;
  int random_prefix_len = 0;
  // ShareGPT: a fixed output length instead of the reply's token count (0).
  int sharegpt_output_len = 0;
  int prefix_repetition_prefix_len = 256;
  int prefix_repetition_suffix_len = 256;
  int prefix_repetition_num_prefixes = 10;
  int prefix_repetition_output_len = 128;

  // ---- load ----
  // Requests per second (Poisson / gamma arrivals); infinity: all at once.
  double request_rate = std::numeric_limits<double>::infinity();
  double burstiness = 1.0;
  // 0: no limit.
  int max_concurrency = 0;
  int num_warmups = 0;

  // ---- sampling ----
  bool ignore_eos = false;
  // Unset: greedy (temperature 0), as vLLM's benchmark sends.
  std::optional<double> temperature;
  std::optional<double> top_p;
  std::optional<int> top_k;
  std::optional<double> min_p;
  // JSON object merged into every request body.
  std::string extra_body;

  // ---- results ----
  std::string percentile_metrics = "ttft,tpot,itl";
  std::string metric_percentiles = "99";
  // SLOs "ttft:MS", "tpot:MS", "e2el:MS".
  std::vector<std::string> goodput;
  bool save_result = false;
  bool save_detailed = false;
  std::string result_dir;
  std::string result_filename;
  // File-name prefix of saved results; empty: --backend.
  std::string label;
  // KEY=VALUE pairs copied into the saved JSON.
  std::vector<std::string> metadata;
  bool disable_tqdm = false;
};

}  // namespace tpserve::bench

#endif  // TPSERVE_BENCH_SERVE_CONFIG_H_
