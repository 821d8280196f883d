// The table of every tpserve setting: its flag name, type, help text,
// accepted values and the subcommands that take it. Parsing (flags and
// YAML) and --help are driven from this one table.
#ifndef TPSERVE_COMMON_CONFIG_OPTIONS_H_
#define TPSERVE_COMMON_CONFIG_OPTIONS_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/config/config.h"

namespace tpserve {

// Components a setting belongs to (bit mask). `serve` takes the union.
enum Component : uint32_t {
  kGateway = 1u << 0,
  kRouter = 1u << 1,
  kWorker = 1u << 2,
  kServeOnly = 1u << 3,  // meaningful only to the one-host launcher
  kAll = kGateway | kRouter | kWorker,
};

// How a value is parsed.
enum class OptionType { kString, kInt, kInt64, kUint64, kDouble, kBool, kStringList };

// One setting.
struct Option {
  // Flag name without dashes, words joined by '-' (e.g. "max-model-len").
  std::string name;
  OptionType type;
  // Components that accept the flag.
  uint32_t components;
  std::string help;
  // For enumerations: the accepted values (empty: any).
  std::vector<std::string> choices;
  // Stores a parsed value into the config; returns an error for out-of-range
  // values (the message is completed with the flag name by the caller).
  std::function<absl::Status(ServerConfig&, const std::string&)> set;
  // Renders the current value (for --help defaults and --check-config).
  std::function<std::string(const ServerConfig&)> get;
  // Lists only: empties the list (a flag replaces what YAML gave).
  std::function<void(ServerConfig&)> clear;
  // Secrets are masked when settings are printed.
  bool secret = false;
};

// Every option, in the order --help lists them.
const std::vector<Option>& AllOptions();

// Finds an option by flag or YAML key ('-' and '_' are interchangeable).
const Option* FindOption(const std::string& key);

// Canonical spelling of a key: lower case, '_' replaced by '-'.
std::string NormalizeKey(const std::string& key);

// The name in `names` closest to `key` by edit distance, or "" if none is
// close enough to be a misspelling of it ("did you mean" hints).
std::string ClosestName(const std::string& key, const std::vector<std::string>& names);

// Closest option name to `key` by edit distance, or "" if none is close.
std::string SuggestOption(const std::string& key);

}  // namespace tpserve

#endif  // TPSERVE_COMMON_CONFIG_OPTIONS_H_
