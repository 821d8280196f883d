// The OpenAI name of a finish reason ("stop", "length", "abort"): what the
// gateway writes in responses and the router's request metrics label.
#ifndef TPSERVE_COMMON_FINISH_REASON_H_
#define TPSERVE_COMMON_FINISH_REASON_H_

#include "proto/common.pb.h"

namespace tpserve {

inline const char* FinishReasonName(v1::FinishReason reason) {
  switch (reason) {
    case v1::FINISH_REASON_STOP: return "stop";
    case v1::FINISH_REASON_LENGTH: return "length";
    default: return "abort";
  }
}

}  // namespace tpserve

#endif  // TPSERVE_COMMON_FINISH_REASON_H_
