// tpserve's version string.
#ifndef TPSERVE_CLI_VERSION_H_
#define TPSERVE_CLI_VERSION_H_

namespace tpserve::cli {
inline constexpr char kVersion[] = "0.1.0";
}  // namespace tpserve::cli

#endif  // TPSERVE_CLI_VERSION_H_
