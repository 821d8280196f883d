// Random ids for responses ("chatcmpl-…", "cmpl-…") and tool calls
// ("chatcmpl-tool-…").
#ifndef TPSERVE_GATEWAY_RANDOM_ID_H_
#define TPSERVE_GATEWAY_RANDOM_ID_H_

#include <string>

namespace tpserve::gateway {

// `prefix` followed by 16 random hex digits.
std::string RandomId(const char* prefix);

}  // namespace tpserve::gateway

#endif  // TPSERVE_GATEWAY_RANDOM_ID_H_
