#include "common/config/parse.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/config/options.h"

namespace tpserve {
namespace {

absl::Status WithKey(const absl::Status& s, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(what, ": ", s.message()));
}

std::string UnknownKeyMessage(const std::string& what, const std::string& key) {
  std::string msg = absl::StrCat("unknown ", what, " '", key, "'");
  std::string near = SuggestOption(key);
  if (!near.empty()) absl::StrAppend(&msg, " (did you mean --", near, "?)");
  return msg;
}

std::string ComponentNames(uint32_t components) {
  std::vector<std::string> names;
  if (components & kGateway) names.push_back("gateway");
  if (components & kRouter) names.push_back("router");
  if (components & kWorker) names.push_back("worker");
  return absl::StrJoin(names, "/");
}

// Applies one value of `opt`. `lists_seen` makes a flag list replace the YAML
// list on its first occurrence and append afterwards.
absl::Status ApplyValue(const Option& opt, const std::string& value, ServerConfig* config,
                        std::set<std::string>* lists_seen) {
  if (opt.clear && lists_seen->insert(opt.name).second) opt.clear(*config);
  return opt.set(*config, value);
}

}  // namespace

absl::Status ApplyYaml(const std::string& yaml_text, const std::string& source,
                       ServerConfig* config) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": invalid YAML: ", e.what()));
  }
  if (root.IsNull()) return absl::OkStatus();
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": expected a mapping of setting names to values"));
  }
  for (const auto& kv : root) {
    const std::string key = kv.first.as<std::string>();
    const Option* opt = FindOption(key);
    if (opt == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": ", UnknownKeyMessage("key", key)));
    }
    const YAML::Node& val = kv.second;
    std::vector<std::string> values;
    if (val.IsSequence()) {
      if (opt->type != OptionType::kStringList) {
        return absl::InvalidArgumentError(
            absl::StrCat(source, ": key '", key, "' takes a single value, not a list"));
      }
      for (const auto& item : val) values.push_back(item.as<std::string>());
    } else if (val.IsScalar()) {
      values.push_back(val.as<std::string>());
    } else if (val.IsNull()) {
      values.push_back("");
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": key '", key, "' must be a scalar or a list"));
    }
    if (opt->clear) opt->clear(*config);
    for (const std::string& v : values) {
      if (absl::Status s = opt->set(*config, v); !s.ok()) {
        return WithKey(s, absl::StrCat(source, ": key '", key, "'"));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<CommandLine> ParseCommandLine(const std::string& subcommand, uint32_t components,
                                             const std::vector<std::string>& args) {
  CommandLine cl;
  // Split into (flag, value) pairs first, so that --config is applied before
  // every other flag wherever it appears.
  struct Flag {
    const Option* opt;
    std::string text;  // as typed, for messages
    std::string value;
  };
  std::vector<Flag> flags;
  std::string config_path;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      cl.help = true;
      continue;
    }
    if (a == "--check-config") {
      cl.check_config = true;
      continue;
    }
    if (a.size() < 3 || a.rfind("--", 0) != 0) {
      if (!a.empty() && a[0] == '-') {
        return absl::InvalidArgumentError(
            absl::StrCat("tpserve ", subcommand, ": unknown flag '", a, "'"));
      }
      cl.positional.push_back(a);
      continue;
    }
    std::string name = a.substr(2);
    std::optional<std::string> value;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    if (NormalizeKey(name) == "config") {
      if (!value) {
        if (i + 1 >= args.size()) {
          return absl::InvalidArgumentError("--config needs a YAML file path");
        }
        value = args[++i];
      }
      config_path = *value;
      continue;
    }
    bool negated = false;
    const Option* opt = FindOption(name);
    if (opt == nullptr && name.rfind("no-", 0) == 0) {
      opt = FindOption(name.substr(3));
      negated = opt != nullptr && opt->type == OptionType::kBool;
      if (!negated) opt = nullptr;
    }
    if (opt == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tpserve ", subcommand, ": ", UnknownKeyMessage("flag", "--" + name)));
    }
    const uint32_t mask = components | (subcommand == "serve" ? kServeOnly : 0);
    if ((opt->components & mask) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tpserve ", subcommand, ": --", opt->name, " is a ", ComponentNames(opt->components),
          " setting; 'tpserve ", subcommand, "' does not take it"));
    }
    if (negated) {
      if (value) {
        return absl::InvalidArgumentError(absl::StrCat("--no-", opt->name, " takes no value"));
      }
      value = "false";
    } else if (!value) {
      if (opt->type == OptionType::kBool &&
          (i + 1 >= args.size() || (args[i + 1] != "true" && args[i + 1] != "false"))) {
        value = "true";
      } else {
        if (i + 1 >= args.size()) {
          return absl::InvalidArgumentError(absl::StrCat("--", opt->name, " needs a value"));
        }
        value = args[++i];
      }
    }
    flags.push_back({opt, a, *value});
  }
  if (!config_path.empty()) {
    std::ifstream in(config_path);
    if (!in) {
      return absl::InvalidArgumentError(
          absl::StrCat("--config: cannot read '", config_path, "'"));
    }
    std::stringstream ss;
    ss << in.rdbuf();
    if (absl::Status s = ApplyYaml(ss.str(), config_path, &cl.config); !s.ok()) return s;
  }
  std::set<std::string> lists_seen;
  for (const Flag& f : flags) {
    if (absl::Status s = ApplyValue(*f.opt, f.value, &cl.config, &lists_seen); !s.ok()) {
      return WithKey(s, absl::StrCat("--", f.opt->name));
    }
  }
  if (!cl.help) {
    if (absl::Status s = ValidateConfig(subcommand, cl.config); !s.ok()) return s;
  }
  return cl;
}

absl::Status ValidateConfig(const std::string& subcommand, const ServerConfig& c) {
  if (subcommand == "router") {
    if (c.workers.empty()) {
      return absl::InvalidArgumentError(
          "tpserve router: give the workers with --worker host:port (one per rank, in rank order)");
    }
    if (static_cast<int>(c.workers.size()) != c.tensor_parallel_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tpserve router: ", c.workers.size(), " --worker addresses for --tensor-parallel-size ",
          c.tensor_parallel_size, "; give one address per rank"));
    }
  }
  if (subcommand == "serve" && c.internal_host != ServerConfig().internal_host) {
    return absl::InvalidArgumentError(
        "tpserve serve keeps its router and workers on 127.0.0.1; --internal-host is for a "
        "standalone router or worker");
  }
  if (subcommand == "gateway" && c.routers.empty()) {
    return absl::InvalidArgumentError(
        "tpserve gateway: give at least one router with --router host:port");
  }
  if (subcommand == "worker" && c.rank >= c.tensor_parallel_size) {
    return absl::InvalidArgumentError(absl::StrCat("--rank ", c.rank,
                                                   " must be below --tensor-parallel-size ",
                                                   c.tensor_parallel_size));
  }
  if (c.max_num_batched_tokens != 0 && c.max_num_batched_tokens < c.max_num_seqs &&
      subcommand != "worker" && subcommand != "gateway") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--max-num-batched-tokens (", c.max_num_batched_tokens,
        ") must be at least --max-num-seqs (", c.max_num_seqs, ")"));
  }
  return absl::OkStatus();
}

std::string HelpText(const std::string& subcommand, uint32_t components) {
  std::ostringstream os;
  os << "usage: tpserve " << subcommand << " [flags]\n\nflags (a YAML file given with --config "
     << "may set the same names; flags win):\n";
  const uint32_t mask = components | (subcommand == "serve" ? kServeOnly : 0);
  ServerConfig defaults;
  for (const Option& o : AllOptions()) {
    if ((o.components & mask) == 0) continue;
    os << "  --" << o.name;
    if (!o.choices.empty() && o.type != OptionType::kBool) {
      os << " {" << absl::StrJoin(o.choices, "|") << "}";
    }
    os << "\n      " << o.help;
    std::string def = o.get(defaults);
    if (!def.empty()) os << " [default: " << def << "]";
    os << "\n";
  }
  os << "  --config FILE\n      YAML file of settings\n"
     << "  --check-config\n      Validate the settings, print them and exit\n";
  return os.str();
}

std::string DescribeConfig(const ServerConfig& config, uint32_t components) {
  std::ostringstream os;
  for (const Option& o : AllOptions()) {
    if ((o.components & components) == 0) continue;
    std::string value = o.get(config);
    if (o.secret && !value.empty()) value = "(set, not shown)";
    if (o.type == OptionType::kStringList && !o.secret) {
      os << o.name << ": [" << value << "]\n";
    } else {
      os << o.name << ": \"" << value << "\"\n";
    }
  }
  return os.str();
}

std::string FlagsMarkdown() {
  std::ostringstream os;
  os << "# tpserve flags\n\n"
     << "Generated from the option table (`common/config/options.cc`) by\n"
     << "`bazel run //common/config:flags_doc > docs/flags.md`; a test fails when this file is stale.\n\n"
     << "Every flag can also be set in a YAML file passed with `--config FILE` (keys are the flag names,\n"
     << "with `-` or `_`); flags win over the file. `--check-config` validates and prints the resolved\n"
     << "settings without starting anything. `tpserve serve` takes every flag below except `--worker`,\n"
     << "`--router` and `--rank`, and hands each child the ones of its component. `tpserve workers` takes\n"
     << "the worker flags except `--rank` and starts one worker process per rank of\n"
     << "`--tensor-parallel-size` (rank r on GPU r, ports +r). `tpserve probe --router ADDR` takes the\n"
     << "gateway flags (the `--internal-ssl-*` ones matter) and exits 0 when that router is ready.\n\n"
     << "| flag | components | default | accepted | meaning |\n| --- | --- | --- | --- | --- |\n";
  ServerConfig defaults;
  for (const Option& o : AllOptions()) {
    std::string def = o.get(defaults);
    os << "| `--" << o.name << "` | " << ComponentNames(o.components & kAll)
       << ((o.components & kServeOnly) ? (o.components & kAll ? "/serve" : "serve") : "") << " | "
       << (def.empty() ? "" : "`" + def + "`") << " | " << absl::StrJoin(o.choices, ", ")
       << (o.type == OptionType::kStringList ? "repeatable" : "") << " | " << o.help << " |\n";
  }
  return os.str();
}

}  // namespace tpserve
