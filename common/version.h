// tpserve's version string, the one place every component reads it from.
#ifndef TPSERVE_COMMON_VERSION_H_
#define TPSERVE_COMMON_VERSION_H_

namespace tpserve {
inline constexpr char kVersion[] = "0.1.0";
}  // namespace tpserve

#endif  // TPSERVE_COMMON_VERSION_H_
