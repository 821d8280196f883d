// Command-line and YAML parsing into ServerConfig. Flags win over the YAML
// file given with --config.
#ifndef TPSERVE_COMMON_CONFIG_PARSE_H_
#define TPSERVE_COMMON_CONFIG_PARSE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/config/config.h"

namespace tpserve {

// What a subcommand's command line asked for.
struct CommandLine {
  ServerConfig config;
  // --check-config: validate, print the resolved settings, start nothing.
  bool check_config = false;
  // --help / -h.
  bool help = false;
  // Arguments that are not flags (e.g. the folder of `tpserve verify DIR`).
  std::vector<std::string> positional;
};

// Parses `args` (without the program and subcommand names) for `subcommand`,
// which accepts the options of `components` (see options.h). Errors name the
// flag or YAML key, the bad value and the accepted values.
absl::StatusOr<CommandLine> ParseCommandLine(const std::string& subcommand, uint32_t components,
                                             const std::vector<std::string>& args);

// Applies a YAML mapping (keys are option names with '-' or '_') to `config`.
// `source` names the file in errors. Keys of any component are accepted, so
// one file can serve several components.
absl::Status ApplyYaml(const std::string& yaml_text, const std::string& source,
                       ServerConfig* config);

// Cross-field checks for `subcommand` (e.g. a router needs --worker
// addresses, as many as --tensor-parallel-size).
absl::Status ValidateConfig(const std::string& subcommand, const ServerConfig& config);

// `tpserve <subcommand> --help` text: every accepted flag with its default.
std::string HelpText(const std::string& subcommand, uint32_t components);

// The resolved settings of `components`, one "name: value" line each, as
// YAML (secrets such as API keys are masked).
std::string DescribeConfig(const ServerConfig& config, uint32_t components);

// docs/flags.md: every flag as a Markdown table (kept in sync by a test).
std::string FlagsMarkdown();

}  // namespace tpserve

#endif  // TPSERVE_COMMON_CONFIG_PARSE_H_
