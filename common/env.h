// The environment variables tpserve reads (the CUDA backend's A/B switches
// and the CPU backend's thread count; docs/worker.md lists them), parsed one
// way everywhere: a value that does not parse, or is out of range, counts as
// unset. Deployments configure tpserve with flags (docs/flags.md), not these.
#ifndef TPSERVE_COMMON_ENV_H_
#define TPSERVE_COMMON_ENV_H_

#include <optional>
#include <string>

namespace tpserve {

// The variable's value, or nullopt when it is unset.
std::optional<std::string> EnvValue(const char* name);

// An integer in [lo, hi]; `fallback` when unset, not an integer or out of
// range.
int EnvIntInRange(const char* name, int lo, int hi, int fallback);

// An on/off switch: "0" is off, "1" on; `fallback` when unset or anything else.
bool EnvSwitch(const char* name, bool fallback);

}  // namespace tpserve

#endif  // TPSERVE_COMMON_ENV_H_
