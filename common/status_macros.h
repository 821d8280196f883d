// Early-return helpers for absl::Status / absl::StatusOr (Abseil 2022 ships
// none publicly).
#ifndef TPSERVE_COMMON_STATUS_MACROS_H_
#define TPSERVE_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define TP_STATUS_CONCAT_INNER_(a, b) a##b
#define TP_STATUS_CONCAT_(a, b) TP_STATUS_CONCAT_INNER_(a, b)

// Returns the status of `expr` from the current function if it is not OK.
#define TP_RETURN_IF_ERROR(expr)                     \
  do {                                               \
    ::absl::Status tp_status_ = (expr);              \
    if (!tp_status_.ok()) return tp_status_;         \
  } while (0)

// `TP_ASSIGN_OR_RETURN(auto x, Foo());` assigns the value of a StatusOr or
// returns its error.
#define TP_ASSIGN_OR_RETURN(lhs, expr) \
  TP_ASSIGN_OR_RETURN_IMPL_(TP_STATUS_CONCAT_(tp_statusor_, __LINE__), lhs, expr)

#define TP_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                              \
  if (!statusor.ok()) return statusor.status();        \
  lhs = std::move(statusor).value()

#endif  // TPSERVE_COMMON_STATUS_MACROS_H_
