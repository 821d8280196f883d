#include "bench/serve/flags.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <optional>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "bench/serve/metrics.h"
#include "common/config/options.h"

namespace tpserve::bench {
namespace {

const BenchFlag* Find(const std::string& name) {
  for (const BenchFlag& f : BenchFlags()) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

std::string Suggest(const std::string& name) {
  std::vector<std::string> names;
  for (const BenchFlag& f : BenchFlags()) names.push_back(f.name);
  return ClosestName(name, names);
}

bool IsFlag(const std::string& a) { return a.size() > 2 && a.rfind("--", 0) == 0; }

absl::Status Named(const std::string& flag, const absl::Status& s) {
  return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", s.message()));
}

absl::Status CheckKeyValues(const std::string& flag, const std::vector<std::string>& items) {
  for (const std::string& kv : items) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(absl::StrCat("--", flag, ": '", kv, "' is not KEY=VALUE"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

bool IsChatEndpoint(const std::string& endpoint) {
  return absl::EndsWith(endpoint, "/chat/completions");
}

absl::StatusOr<BenchCommandLine> ParseBenchFlags(const std::vector<std::string>& args) {
  BenchCommandLine cl;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      cl.help = true;
      continue;
    }
    if (!IsFlag(a)) {
      return absl::InvalidArgumentError(
          absl::StrCat("tpserve bench serve: unexpected argument '", a, "'"));
    }
    std::string name = a.substr(2);
    std::optional<std::string> inline_value;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      inline_value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    name = NormalizeKey(name);
    const BenchFlag* f = Find(name);
    if (f == nullptr) {
      std::string msg = absl::StrCat("tpserve bench serve: unknown flag '--", name, "'");
      if (std::string near = Suggest(name); !near.empty()) {
        absl::StrAppend(&msg, " (did you mean --", near, "?)");
      }
      return absl::InvalidArgumentError(msg);
    }
    std::vector<std::string> values;
    if (f->arity == Arity::kNone) {
      if (inline_value) return absl::InvalidArgumentError(absl::StrCat(a, ": takes no value"));
      values.push_back("");
    } else if (inline_value) {
      values.push_back(*inline_value);
    } else if (f->arity == Arity::kOne) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
      }
      values.push_back(args[++i]);
    } else {
      while (i + 1 < args.size() && !IsFlag(args[i + 1])) values.push_back(args[++i]);
      if (values.empty()) {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " needs at least one value"));
      }
    }
    for (const std::string& v : values) {
      if (absl::Status s = f->set(cl.config, v); !s.ok()) return Named(name, s);
    }
  }
  // vLLM pairs --backend openai-chat with the chat path; the path alone
  // decides the request format here, and the backend name follows it.
  BenchConfig& c = cl.config;
  if (c.backend == "openai-chat" && c.endpoint == "/v1/completions") {
    c.endpoint = "/v1/chat/completions";
  }
  if (IsChatEndpoint(c.endpoint)) c.backend = "openai-chat";
  if (!cl.help) {
    if (absl::Status s = ValidateBenchConfig(cl.config); !s.ok()) return s;
  }
  return cl;
}

absl::Status ValidateBenchConfig(const BenchConfig& c) {
  if (!absl::StartsWith(c.endpoint, "/") || !absl::EndsWith(c.endpoint, "/completions")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--endpoint: '", c.endpoint,
        "' is not accepted (accepted: /v1/completions, /v1/chat/completions or another path "
        "ending in /completions)"));
  }
  if (c.backend == "openai-chat" && !IsChatEndpoint(c.endpoint)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--backend openai-chat needs a chat endpoint, not --endpoint ", c.endpoint));
  }
  if (c.dataset_name == "sharegpt" && c.dataset_path.empty()) {
    return absl::InvalidArgumentError(
        "--dataset-name sharegpt needs --dataset-path FILE (a ShareGPT JSON file)");
  }
  if (c.dataset_name != "sharegpt" && !c.dataset_path.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--dataset-path is only for --dataset-name "
                     "sharegpt, not '",
                     c.dataset_name, "'"));
  }
  if (c.dataset_name == "prefix-repetition" && c.num_prompts < c.prefix_repetition_num_prefixes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--num-prompts (", c.num_prompts, ") must be at least --prefix-repetition-num-prefixes (",
        c.prefix_repetition_num_prefixes, ")"));
  }
  if (!c.base_url.empty() && !absl::StartsWith(c.base_url, "http://") &&
      !absl::StartsWith(c.base_url, "https://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("--base-url: '", c.base_url, "' must start with http:// or https://"));
  }
  if (absl::StatusOr<std::vector<std::string>> m = ParsePercentileMetrics(c.percentile_metrics);
      !m.ok()) {
    return Named("percentile-metrics", m.status());
  }
  if (absl::StatusOr<std::vector<double>> p = ParseMetricPercentiles(c.metric_percentiles);
      !p.ok()) {
    return Named("metric-percentiles", p.status());
  }
  if (absl::StatusOr<Slo> g = ParseGoodput(c.goodput); !g.ok()) return Named("goodput", g.status());
  if (!c.extra_body.empty()) {
    nlohmann::json j = nlohmann::json::parse(c.extra_body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      return absl::InvalidArgumentError("--extra-body: not a JSON object");
    }
  }
  if (absl::Status s = CheckKeyValues("header", c.headers); !s.ok()) return s;
  return CheckKeyValues("metadata", c.metadata);
}

std::string BenchHelpText() {
  std::ostringstream os;
  os << "usage: tpserve bench serve [flags]\n\n"
     << "Measures a running OpenAI-compatible server (tpserve, vLLM, SGLang, ...) as\n"
     << "`vllm bench serve` does, with the same flags, output and result JSON.\n";
  const BenchConfig defaults;
  std::string group;
  for (const BenchFlag& f : BenchFlags()) {
    if (f.group != group) {
      group = f.group;
      os << "\n" << group << ":\n";
    }
    os << "  --" << f.name << (f.metavar.empty() ? "" : " " + f.metavar) << "\n      " << f.help;
    if (std::string def = f.get(defaults); !def.empty()) os << " [default: " << def << "]";
    os << "\n";
  }
  os << "\nExit status: 0 when every request succeeded, 1 when any failed or the server could\n"
     << "not be reached, 2 for bad flags. docs/bench.md has the details.\n";
  return os.str();
}

std::string BenchFlagsMarkdown() {
  std::ostringstream os;
  os << "\n## tpserve bench serve\n\n"
     << "The serving benchmark (`bench/serve/flags.cc`; vLLM's `vllm bench serve` flag names; "
     << "see docs/bench.md).\n\n"
     << "| flag | group | default | meaning |\n| --- | --- | --- | --- |\n";
  const BenchConfig defaults;
  for (const BenchFlag& f : BenchFlags()) {
    std::string def = f.get(defaults);
    os << "| `--" << f.name << (f.metavar.empty() ? "" : " " + f.metavar) << "` | " << f.group
       << " | " << (def.empty() ? "" : "`" + def + "`") << " | " << f.help << " |\n";
  }
  return os.str();
}

}  // namespace tpserve::bench
