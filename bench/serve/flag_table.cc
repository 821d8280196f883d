// The flag table of `tpserve bench serve` (names, help, defaults, setters).
#include "bench/serve/flags.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tpserve::bench {
namespace {

using C = BenchConfig;

std::string FormatNumber(double v) {
  if (std::isinf(v)) return "inf";
  std::ostringstream os;
  os << v;
  return os.str();
}

absl::Status OutOfRange(const std::string& v, const std::string& accepted) {
  return absl::InvalidArgumentError(
      absl::StrCat("'", v, "' is out of range (accepted: ", accepted, ")"));
}

BenchFlag Str(std::string name, std::string C::*m, std::string metavar, std::string help,
              std::string group, std::vector<std::string> choices = {}) {
  BenchFlag f{
      std::move(name), Arity::kOne, std::move(metavar), std::move(help), std::move(group), {}, {}};
  f.set = [m, choices](C& c, const std::string& v) {
    if (!choices.empty() && std::find(choices.begin(), choices.end(), v) == choices.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", v, "' is not accepted (accepted: ", absl::StrJoin(choices, ", "), ")"));
    }
    c.*m = v;
    return absl::OkStatus();
  };
  f.get = [m](const C& c) { return c.*m; };
  return f;
}

BenchFlag Int(std::string name, int C::*m, int lo, int hi, std::string help, std::string group) {
  BenchFlag f{std::move(name), Arity::kOne, "N", std::move(help), std::move(group), {}, {}};
  f.set = [m, lo, hi](C& c, const std::string& v) {
    int x = 0;
    if (!absl::SimpleAtoi(v, &x)) {
      return absl::InvalidArgumentError(absl::StrCat("'", v, "' is not an integer"));
    }
    if (x < lo || x > hi) return OutOfRange(v, absl::StrCat(lo, " to ", hi));
    c.*m = x;
    return absl::OkStatus();
  };
  f.get = [m](const C& c) { return std::to_string(c.*m); };
  return f;
}

// A number in [lo, hi] ("inf" allowed when hi is infinite); `lo_open`
// excludes lo itself.
absl::Status ParseDouble(const std::string& v, double lo, double hi, bool lo_open, double* out) {
  double x = 0;
  if (!absl::SimpleAtod(v, &x) || std::isnan(x)) {
    return absl::InvalidArgumentError(absl::StrCat("'", v, "' is not a number"));
  }
  if ((lo_open ? x <= lo : x < lo) || x > hi) {
    return OutOfRange(
        v, absl::StrCat(lo_open ? "above " : "", FormatNumber(lo), " to ", FormatNumber(hi)));
  }
  *out = x;
  return absl::OkStatus();
}

BenchFlag Dbl(std::string name, double C::*m, double lo, double hi, bool lo_open, std::string help,
              std::string group) {
  BenchFlag f{std::move(name), Arity::kOne, "X", std::move(help), std::move(group), {}, {}};
  f.set = [m, lo, hi, lo_open](C& c, const std::string& v) {
    return ParseDouble(v, lo, hi, lo_open, &(c.*m));
  };
  f.get = [m](const C& c) { return FormatNumber(c.*m); };
  return f;
}

BenchFlag OptDbl(std::string name, std::optional<double> C::*m, double lo, double hi,
                 std::string help) {
  BenchFlag f{std::move(name), Arity::kOne, "X", std::move(help), "sampling", {}, {}};
  f.set = [m, lo, hi](C& c, const std::string& v) {
    double x = 0;
    if (absl::Status s = ParseDouble(v, lo, hi, false, &x); !s.ok()) return s;
    c.*m = x;
    return absl::OkStatus();
  };
  f.get = [](const C&) { return std::string(); };
  return f;
}

BenchFlag Switch(std::string name, bool C::*m, std::string help, std::string group) {
  BenchFlag f{std::move(name), Arity::kNone, "", std::move(help), std::move(group), {}, {}};
  f.set = [m](C& c, const std::string&) {
    c.*m = true;
    return absl::OkStatus();
  };
  f.get = [](const C&) { return std::string(); };
  return f;
}

BenchFlag List(std::string name, std::vector<std::string> C::*m, std::string metavar,
               std::string help, std::string group) {
  BenchFlag f{
      std::move(name), Arity::kMany, std::move(metavar), std::move(help), std::move(group), {}, {}};
  f.set = [m](C& c, const std::string& v) {
    (c.*m).push_back(v);
    return absl::OkStatus();
  };
  f.get = [](const C&) { return std::string(); };
  return f;
}

std::vector<BenchFlag> Build() {
  std::vector<BenchFlag> v;
  const std::string srv = "server", wl = "workload", ld = "load", smp = "sampling", res = "results";
  v.push_back(Str("backend", &C::backend, "NAME",
                  "Request format, as vLLM's: openai/vllm (completions) or openai-chat (chat; "
                  "implies --endpoint /v1/chat/completions)",
                  srv, {"openai", "vllm", "openai-chat"}));
  v.push_back(Str("base-url", &C::base_url, "URL",
                  "Server URL, e.g. http://10.0.0.5:8000 (default: http://HOST:PORT)", srv));
  v.push_back(Str("host", &C::host, "HOST", "Server host when --base-url is not given", srv));
  v.push_back(Int("port", &C::port, 1, 65535, "Server port when --base-url is not given", srv));
  v.push_back(Str("endpoint", &C::endpoint, "PATH",
                  "API path: /v1/completions (prompts as token ids) or /v1/chat/completions "
                  "(prompts as text)",
                  srv));
  v.push_back(Str("model", &C::model, "NAME",
                  "Model name (default: the first model the server lists at /v1/models); a "
                  "local folder also gives the tokenizer",
                  srv));
  v.push_back(Str("served-model-name", &C::served_model_name, "NAME",
                  "Name sent in \"model\" when it differs from --model", srv));
  v.push_back(Str("tokenizer", &C::tokenizer, "DIR",
                  "Tokenizer folder (tokenizer.json) for prompt and reply lengths (default: "
                  "--model if a folder, else the embedded Qwen2 tokenizer)",
                  srv));
  v.push_back(Str("api-key", &C::api_key, "KEY",
                  "Sent as 'Authorization: Bearer KEY' (default: $OPENAI_API_KEY)", srv));
  v.push_back(List("header", &C::headers, "KEY=VALUE ...", "Extra request headers", srv));
  v.push_back(Int("ready-check-timeout-sec", &C::ready_check_timeout_sec, 0, 86400,
                  "How long the first test request retries while the server starts (0: no test "
                  "request)",
                  srv));
  v.push_back(Str("dataset-name", &C::dataset_name, "NAME",
                  "Workload: random token prompts, ShareGPT conversations, or groups of prompts "
                  "sharing long prefixes",
                  wl, {"random", "sharegpt", "prefix-repetition"}));
  v.push_back(Str("dataset-path", &C::dataset_path, "FILE",
                  "ShareGPT JSON file: a list of {\"conversations\": [{\"from\", \"value\"}, ...]}",
                  wl));
  v.push_back(Int("num-prompts", &C::num_prompts, 1, 10000000, "Number of requests", wl));
  BenchFlag seed{"seed", Arity::kOne, "N", "Seed of the workload and the arrival times",
                 wl,     {},          {}};
  seed.set = [](C& c, const std::string& s) {
    if (!absl::SimpleAtoi(s, &c.seed)) {
      return absl::InvalidArgumentError(absl::StrCat("'", s, "' is not an unsigned integer"));
    }
    return absl::OkStatus();
  };
  seed.get = [](const C& c) { return std::to_string(c.seed); };
  v.push_back(std::move(seed));
  const int kMaxLen = 1 << 24;
  v.push_back(Int("random-input-len", &C::random_input_len, 1, kMaxLen,
                  "random: prompt tokens per request (after the prefix)", wl));
  v.push_back(Int("random-output-len", &C::random_output_len, 1, kMaxLen,
                  "random: output tokens per request (max_tokens)", wl));
  v.push_back(Dbl("random-range-ratio", &C::random_range_ratio, 0.0, 0.999999, false,
                  "random: lengths are drawn uniformly from [len*(1-r), len*(1+r)]", wl));
  v.push_back(Int("random-prefix-len", &C::random_prefix_len, 0, kMaxLen,
                  "random: tokens of one prefix shared by every prompt", wl));
  v.push_back(Int("sharegpt-output-len", &C::sharegpt_output_len, 0, kMaxLen,
                  "sharegpt: fixed output length (0: the reply's token count)", wl));
  v.push_back(Int("prefix-repetition-prefix-len", &C::prefix_repetition_prefix_len, 1, kMaxLen,
                  "prefix-repetition: tokens of each shared prefix", wl));
  v.push_back(Int("prefix-repetition-suffix-len", &C::prefix_repetition_suffix_len, 1, kMaxLen,
                  "prefix-repetition: tokens after the prefix, different per request", wl));
  v.push_back(Int("prefix-repetition-num-prefixes", &C::prefix_repetition_num_prefixes, 1, kMaxLen,
                  "prefix-repetition: distinct prefixes (num-prompts / this share each)", wl));
  v.push_back(Int("prefix-repetition-output-len", &C::prefix_repetition_output_len, 1, kMaxLen,
                  "prefix-repetition: output tokens per request", wl));
  v.push_back(Dbl("request-rate", &C::request_rate, 0.0, std::numeric_limits<double>::infinity(),
                  true,
                  "Requests per second, arriving as a Poisson process (gamma with --burstiness); "
                  "inf sends all at once",
                  ld));
  v.push_back(Dbl("burstiness", &C::burstiness, 0.0, std::numeric_limits<double>::infinity(), true,
                  "Gamma shape of the arrival intervals: 1 Poisson, below 1 burstier, above 1 "
                  "more even, inf evenly spaced",
                  ld));
  v.push_back(Int("max-concurrency", &C::max_concurrency, 0, 1000000,
                  "Most requests in flight at once (0: no limit)", ld));
  v.push_back(Int("num-warmups", &C::num_warmups, 0, 1000000,
                  "Requests sent (and not measured) before the run", ld));
  v.push_back(Switch("ignore-eos", &C::ignore_eos,
                     "Send ignore_eos so every request generates its full output length (always "
                     "on for --dataset-name random, as in vLLM)",
                     smp));
  v.push_back(OptDbl("temperature", &C::temperature, 0.0, 100.0,
                     "Sampling temperature (default: 0, greedy, as vLLM's benchmark)"));
  v.push_back(OptDbl("top-p", &C::top_p, 0.0, 1.0, "Top-p (default: the server's)"));
  BenchFlag top_k{"top-k", Arity::kOne, "N", "Top-k (default: the server's)", smp, {}, {}};
  top_k.set = [](C& c, const std::string& s) {
    int x = 0;
    if (!absl::SimpleAtoi(s, &x) || x < -1) {
      return absl::InvalidArgumentError(absl::StrCat("'", s, "' is not an integer >= -1"));
    }
    c.top_k = x;
    return absl::OkStatus();
  };
  top_k.get = [](const C&) { return std::string(); };
  v.push_back(std::move(top_k));
  v.push_back(OptDbl("min-p", &C::min_p, 0.0, 1.0, "Min-p (default: the server's)"));
  v.push_back(
      Str("extra-body", &C::extra_body, "JSON", "JSON object merged into every request body", smp));
  v.push_back(Str("percentile-metrics", &C::percentile_metrics, "LIST",
                  "Metrics reported with percentiles, from ttft, tpot, itl, e2el", res));
  v.push_back(Str("metric-percentiles", &C::metric_percentiles, "LIST",
                  "Percentiles reported, comma-separated (e.g. 50,90,99)", res));
  v.push_back(List("goodput", &C::goodput, "KEY:MS ...",
                   "SLOs in ms (ttft, tpot, e2el): goodput counts requests meeting all of them",
                   res));
  v.push_back(Switch("save-result", &C::save_result, "Save the results as JSON", res));
  v.push_back(Switch("save-detailed", &C::save_detailed,
                     "Also save per-request lengths, TTFTs, ITLs, texts and errors", res));
  v.push_back(Str("result-dir", &C::result_dir, "DIR",
                  "Folder of the JSON file (default: the current folder)", res));
  v.push_back(Str("result-filename", &C::result_filename, "NAME",
                  "JSON file name (default: LABEL-RATEqps[-concurrencyN]-MODEL-DATE.json)", res));
  v.push_back(
      Str("label", &C::label, "NAME", "Prefix of the JSON file name (default: --backend)", res));
  v.push_back(List("metadata", &C::metadata, "KEY=VALUE ...", "Saved into the JSON as is", res));
  v.push_back(Switch("disable-tqdm", &C::disable_tqdm, "No progress bar or progress lines", res));
  return v;
}

}  // namespace

const std::vector<BenchFlag>& BenchFlags() {
  static const std::vector<BenchFlag>* flags = new std::vector<BenchFlag>(Build());
  return *flags;
}

}  // namespace tpserve::bench
