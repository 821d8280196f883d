#include "common/config/options.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace tpserve {
namespace {

template <typename T>
absl::Status ParseNumber(const std::string& text, T* out) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, *out);
  if (ec != std::errc() || ptr != end || text.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not a valid number"));
  }
  return absl::OkStatus();
}

absl::Status ParseDouble(const std::string& text, double* out) {
  // std::from_chars for double is fine in GCC 12, but also accept "1e-3".
  char* end = nullptr;
  *out = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(*out)) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not a valid number"));
  }
  return absl::OkStatus();
}

absl::Status ParseBool(const std::string& text, bool* out) {
  std::string t = text;
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
  if (t == "true" || t == "1" || t == "yes" || t == "on") {
    *out = true;
  } else if (t == "false" || t == "0" || t == "no" || t == "off") {
    *out = false;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "' is not a boolean (accepted: true, false)"));
  }
  return absl::OkStatus();
}

template <typename T>
absl::Status CheckRange(T v, T lo, T hi) {
  if (v < lo || v > hi) {
    return absl::InvalidArgumentError(
        absl::StrCat(v, " is out of range (accepted: ", lo, " to ", hi, ")"));
  }
  return absl::OkStatus();
}

std::string FormatDouble(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

// Builders for the table below: each binds a ServerConfig member.
Option StringOpt(std::string name, std::string ServerConfig::*m, uint32_t comps, std::string help,
                 std::vector<std::string> choices = {}) {
  Option o{std::move(name), OptionType::kString, comps, std::move(help), std::move(choices), {}, {}};
  std::vector<std::string> ch = o.choices;
  o.set = [m, ch](ServerConfig& c, const std::string& v) {
    if (!ch.empty() && std::find(ch.begin(), ch.end(), v) == ch.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", v, "' is not accepted (accepted: ", absl::StrJoin(ch, ", "), ")"));
    }
    c.*m = v;
    return absl::OkStatus();
  };
  o.get = [m](const ServerConfig& c) { return c.*m; };
  return o;
}

// An integer setting of type T (int or int64_t) accepted within [lo, hi].
template <typename T>
Option IntegerOpt(std::string name, T ServerConfig::*m, uint32_t comps, std::string help, T lo,
                  T hi) {
  const OptionType type = sizeof(T) == sizeof(int64_t) ? OptionType::kInt64 : OptionType::kInt;
  Option o{std::move(name), type, comps, std::move(help), {}, {}, {}};
  o.set = [m, lo, hi](ServerConfig& c, const std::string& v) {
    T x = 0;
    if (absl::Status s = ParseNumber(v, &x); !s.ok()) return s;
    if (absl::Status s = CheckRange(x, lo, hi); !s.ok()) return s;
    c.*m = x;
    return absl::OkStatus();
  };
  o.get = [m](const ServerConfig& c) { return std::to_string(c.*m); };
  return o;
}

Option IntOpt(std::string name, int ServerConfig::*m, uint32_t comps, std::string help, int lo,
              int hi) {
  return IntegerOpt<int>(std::move(name), m, comps, std::move(help), lo, hi);
}

Option Int64Opt(std::string name, int64_t ServerConfig::*m, uint32_t comps, std::string help,
                int64_t lo, int64_t hi) {
  return IntegerOpt<int64_t>(std::move(name), m, comps, std::move(help), lo, hi);
}

Option DoubleOpt(std::string name, double ServerConfig::*m, uint32_t comps, std::string help,
                 double lo, double hi, bool lo_exclusive) {
  Option o{std::move(name), OptionType::kDouble, comps, std::move(help), {}, {}, {}};
  o.set = [m, lo, hi, lo_exclusive](ServerConfig& c, const std::string& v) {
    double x = 0;
    if (absl::Status s = ParseDouble(v, &x); !s.ok()) return s;
    if ((lo_exclusive ? x <= lo : x < lo) || x > hi) {
      return absl::InvalidArgumentError(absl::StrCat(v, " is out of range (accepted: ",
                                                     lo_exclusive ? "above " : "", FormatDouble(lo),
                                                     " to ", FormatDouble(hi), ")"));
    }
    c.*m = x;
    return absl::OkStatus();
  };
  o.get = [m](const ServerConfig& c) { return FormatDouble(c.*m); };
  return o;
}

Option BoolOpt(std::string name, bool ServerConfig::*m, uint32_t comps, std::string help) {
  Option o{std::move(name), OptionType::kBool, comps, std::move(help), {"true", "false"}, {}, {}};
  o.set = [m](ServerConfig& c, const std::string& v) {
    bool b = false;
    if (absl::Status s = ParseBool(v, &b); !s.ok()) return s;
    c.*m = b;
    return absl::OkStatus();
  };
  o.get = [m](const ServerConfig& c) { return std::string(c.*m ? "true" : "false"); };
  return o;
}

// Repeatable; each occurrence appends, and a comma-separated value appends
// several.
Option ListOpt(std::string name, std::vector<std::string> ServerConfig::*m, uint32_t comps,
               std::string help) {
  Option o{std::move(name), OptionType::kStringList, comps, std::move(help), {}, {}, {}};
  o.set = [m](ServerConfig& c, const std::string& v) {
    for (absl::string_view part : absl::StrSplit(v, ',', absl::SkipWhitespace())) {
      (c.*m).emplace_back(part);
    }
    return absl::OkStatus();
  };
  o.get = [m](const ServerConfig& c) { return absl::StrJoin(c.*m, ","); };
  o.clear = [m](ServerConfig& c) { (c.*m).clear(); };
  return o;
}

std::vector<Option> BuildOptions() {
  using C = ServerConfig;
  const uint32_t kGR = kGateway | kRouter;
  std::vector<Option> v;
  // Model.
  v.push_back(StringOpt("model", &C::model, kGR,
                        "Model folder (config.json, tokenizer, safetensors). Default: the embedded "
                        "tiny chat model"));
  v.push_back(StringOpt("served-model-name", &C::served_model_name, kGateway,
                        "Model name clients send in \"model\" (default: the --model argument)"));
  v.push_back(StringOpt("tokenizer", &C::tokenizer, kGateway,
                        "Tokenizer folder (default: --model)"));
  v.push_back(StringOpt("load-format", &C::load_format, kRouter,
                        "How workers get weights: auto|safetensors read the files; dummy makes "
                        "seeded random weights from config.json",
                        {"auto", "safetensors", "dummy"}));
  v.push_back(StringOpt("dtype", &C::dtype, kRouter, "Compute dtype on the GPU",
                        {"auto", "bfloat16", "float16", "float32"}));
  v.push_back(StringOpt("quantization", &C::quantization, kRouter,
                        "Weight format on the GPU: auto keeps the checkpoint's; fp8 quantizes the linear "
                        "layers to FP8 E4M3 with per-channel scales at load time (GPUs with FP8: sm_89+)",
                        {"auto", "fp8"}));
  v.push_back(StringOpt("kv-cache-dtype", &C::kv_cache_dtype, kRouter,
                        "KV cache element type: auto is the compute dtype; fp8 (= fp8_e4m3) stores K and V "
                        "as FP8 E4M3 with the checkpoint's per-layer k_scale/v_scale (1.0 when absent), twice the "
                        "blocks in the same memory (GPUs with FP8: sm_89+; "
                        "the CPU backend rounds its float32 cache through E4M3)",
                        {"auto", "fp8", "fp8_e4m3"}));
  Option seed{"seed", OptionType::kUint64, kRouter,
              "Seed for dummy weights and for requests that bring none", {}, {}, {}};
  seed.set = [](ServerConfig& c, const std::string& s) {
    uint64_t x = 0;
    if (absl::Status st = ParseNumber(s, &x); !st.ok()) return st;
    c.seed = x;
    return absl::OkStatus();
  };
  seed.get = [](const ServerConfig& c) { return std::to_string(c.seed); };
  v.push_back(std::move(seed));
  v.push_back(IntOpt("max-model-len", &C::max_model_len, kGR,
                     "Longest prompt + output in tokens (0: the model's max_position_embeddings)", 0,
                     1 << 24));
  // Parallelism and device.
  v.push_back(IntOpt("tensor-parallel-size", &C::tensor_parallel_size, kRouter | kWorker,
                     "Number of tensor-parallel ranks (GPUs) per model replica", 1, 64));
  v.push_back(StringOpt("device", &C::device, kWorker | kServeOnly,
                        "Compute device (auto: cuda when a GPU is present, else cpu)",
                        {"auto", "cpu", "cuda"}));
  v.push_back(DoubleOpt("gpu-memory-utilization", &C::gpu_memory_utilization, kRouter,
                        "Fraction of each GPU's memory tpserve may use (weights + activations + KV "
                        "cache)",
                        0.0, 1.0, true));
  v.push_back(DoubleOpt("cpu-kv-cache-space", &C::cpu_kv_cache_space, kRouter,
                        "KV cache size per CPU worker in GiB", 0.0, 1024.0, true));
  v.push_back(StringOpt("block-size", nullptr, kRouter, "Tokens per KV block",
                        {"8", "16", "32", "64", "128"}));
  v.back().set = [](ServerConfig& c, const std::string& s) {
    for (int b : {8, 16, 32, 64, 128}) {
      if (s == std::to_string(b)) {
        c.block_size = b;
        return absl::OkStatus();
      }
    }
    return absl::InvalidArgumentError(
        absl::StrCat("'", s, "' is not accepted (accepted: 8, 16, 32, 64, 128)"));
  };
  v.back().type = OptionType::kInt;
  v.back().get = [](const ServerConfig& c) { return std::to_string(c.block_size); };
  v.push_back(BoolOpt("enforce-eager", &C::enforce_eager, kRouter,
                      "Run decode steps eagerly (no CUDA graphs)"));
  // Scheduler.
  v.push_back(IntOpt("max-num-seqs", &C::max_num_seqs, kRouter,
                     "Most sequences in one step", 1, 65536));
  v.push_back(IntOpt("max-num-batched-tokens", &C::max_num_batched_tokens, kRouter,
                     "Token budget of one step (0: max(8192, max-num-seqs); longer prompts are prefilled in chunks)", 0, 1 << 24));
  v.push_back(IntOpt("max-queued-requests", &C::max_queued_requests, kRouter,
                     "Waiting requests beyond which new ones get 429", 1, 1 << 24));
  v.push_back(Int64Opt("max-waiting-tokens", &C::max_waiting_tokens, kRouter,
                       "Prompt tokens allowed waiting before new requests get 429 (0: no bound)", 0,
                       int64_t{1} << 40));
  v.push_back(BoolOpt("enable-prefix-caching", &C::enable_prefix_caching, kRouter,
                      "Reuse KV blocks of identical prompt prefixes"));
  v.push_back(StringOpt("scheduling-policy", &C::scheduling_policy, kRouter,
                        "Order of waiting requests (priority: lower 'priority' first)",
                        {"fcfs", "priority"}));
  // Network.
  v.push_back(StringOpt("host", &C::host, kGateway, "Gateway HTTP listen address"));
  v.push_back(IntOpt("port", &C::port, kGateway, "Gateway HTTP port", 0, 65535));
  v.push_back(IntOpt("router-port", &C::router_port, kRouter, "Router gRPC port", 0, 65535));
  v.push_back(IntOpt("worker-port", &C::worker_port, kWorker,
                     "Worker gRPC port (serve, workers: port of rank 0, rank i uses +i)", 0, 65535));
  v.push_back(ListOpt("worker", &C::workers, kRouter,
                      "Worker address host:port, repeated in rank order"));
  v.push_back(ListOpt("router", &C::routers, kGateway,
                      "Router address host:port, repeated for several replicas"));
  v.push_back(IntOpt("rank", &C::rank, kWorker, "This worker's rank (-1: set by the router)", -1,
                     63));
  v.push_back(IntOpt("metrics-port", &C::metrics_port, kRouter | kWorker,
                     "Prometheus /metrics HTTP port (0: off; workers: rank i uses +i)", 0, 65535));
  v.push_back(StringOpt("internal-host", &C::internal_host, kRouter | kWorker,
                        "Listen address of the router's and worker's gRPC and /metrics "
                        "(serve: always 127.0.0.1)"));
  v.push_back(StringOpt("internal-ssl-ca-certs", &C::internal_ssl_ca_certs, kAll,
                        "CA bundle (PEM) for mutual TLS between gateway, router and workers; "
                        "with --internal-ssl-certfile and --internal-ssl-keyfile"));
  v.push_back(StringOpt("internal-ssl-certfile", &C::internal_ssl_certfile, kAll,
                        "This component's certificate chain (PEM) for internal mutual TLS"));
  v.push_back(StringOpt("internal-ssl-keyfile", &C::internal_ssl_keyfile, kAll,
                        "This component's private key (PEM) for internal mutual TLS"));
  v.push_back(StringOpt("internal-ssl-target-name", &C::internal_ssl_target_name, kAll,
                        "Name expected in peers' certificates instead of the address's host"));
  // Gateway.
  v.push_back(ListOpt("api-key", &C::api_keys, kGateway,
                      "Accepted API key (repeatable); none and no key file: no authentication"));
  v.back().secret = true;
  v.push_back(StringOpt("api-key-file", &C::api_key_file, kGateway,
                        "File with one accepted API key per line"));
  v.push_back(Int64Opt("max-request-body-bytes", &C::max_request_body_bytes, kGateway,
                       "Largest accepted request body", 1024, int64_t{1} << 32));
  v.push_back(IntOpt("max-n", &C::max_n, kGateway, "Largest accepted \"n\"", 1, 128));
  v.push_back(IntOpt("max-stop-strings", &C::max_stop_strings, kGateway,
                     "Most stop strings per request", 0, 256));
  v.push_back(StringOpt("chat-template", &C::chat_template, kGateway,
                        "Jinja chat template file overriding tokenizer_config.json's"));
  v.push_back(IntOpt("max-choices-per-request", &C::max_choices_per_request, kGateway,
                     "Most completions one request may ask for (prompts x n)", 1, 65536));
  v.push_back(IntOpt("max-connections", &C::max_connections, kGateway,
                     "Open client connections; at the cap the longest-idle one is closed", 16,
                     1 << 20));
  v.push_back(IntOpt("http-header-timeout-ms", &C::http_header_timeout_ms, kGateway,
                     "Time for a request's line and headers (and TLS handshake) to arrive", 100,
                     3600000));
  v.push_back(IntOpt("http-body-timeout-ms", &C::http_body_timeout_ms, kGateway,
                     "Time for a request's body to arrive after its headers", 100, 3600000));
  v.push_back(StringOpt("ssl-certfile", &C::ssl_certfile, kGateway,
                        "Serve HTTPS with this PEM certificate chain (needs --ssl-keyfile)"));
  v.push_back(StringOpt("ssl-keyfile", &C::ssl_keyfile, kGateway,
                        "PEM private key of --ssl-certfile"));
  v.push_back(StringOpt("ssl-ca-certs", &C::ssl_ca_certs, kGateway,
                        "PEM CA bundle: clients must present a certificate signed by one of them"));
  // Timeouts.
  v.push_back(IntOpt("worker-step-timeout-ms", &C::worker_step_timeout_ms, kRouter,
                     "How long a rank may take to answer a step before it is declared failed", 100, 3600000));
  v.push_back(IntOpt("worker-init-timeout-ms", &C::worker_init_timeout_ms, kRouter,
                     "Timeout of the worker handshake (load, profile)", 1000, 86400000));
  v.push_back(IntOpt("drain-timeout-ms", &C::drain_timeout_ms, kGR,
                     "On SIGTERM, wait this long for in-flight requests, then end them "
                     "with an error", 0, 3600000));
  v.push_back(StringOpt("log-level", &C::log_level, kAll | kServeOnly, "Log verbosity",
                        {"trace", "debug", "info", "warning", "error", "critical", "off"}));
  return v;
}

int EditDistance(const std::string& a, const std::string& b) {
  std::vector<int> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = static_cast<int>(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = static_cast<int>(i);
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

}  // namespace

const std::vector<Option>& AllOptions() {
  static const std::vector<Option>* options = new std::vector<Option>(BuildOptions());
  return *options;
}

std::string NormalizeKey(const std::string& key) {
  std::string k = key;
  for (char& c : k) {
    c = c == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return k;
}

const Option* FindOption(const std::string& key) {
  const std::string k = NormalizeKey(key);
  for (const Option& o : AllOptions()) {
    if (o.name == k) return &o;
  }
  return nullptr;
}

std::string ClosestName(const std::string& key, const std::vector<std::string>& names) {
  std::string best;
  int best_d = std::numeric_limits<int>::max();
  for (const std::string& name : names) {
    int d = EditDistance(key, name);
    if (d < best_d) {
      best_d = d;
      best = name;
    }
  }
  return best_d <= std::max<int>(2, static_cast<int>(key.size()) / 4) ? best : "";
}

std::string SuggestOption(const std::string& key) {
  std::vector<std::string> names;
  for (const Option& o : AllOptions()) names.push_back(o.name);
  return ClosestName(NormalizeKey(key), names);
}

}  // namespace tpserve
