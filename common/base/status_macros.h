// Early-return helpers for absl::Status / absl::StatusOr (abseil 20220623 on
// Debian 12 ships no status macros of its own).
#ifndef SHARDLM_COMMON_BASE_STATUS_MACROS_H_
#define SHARDLM_COMMON_BASE_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define SHARDLM_CONCAT_INNER(a, b) a##b
#define SHARDLM_CONCAT(a, b) SHARDLM_CONCAT_INNER(a, b)

// RETURN_IF_ERROR(expr): returns the status of `expr` when it is not OK.
#define RETURN_IF_ERROR(expr)                          \
  do {                                                 \
    const absl::Status shardlm_status_ = (expr);       \
    if (!shardlm_status_.ok()) return shardlm_status_; \
  } while (0)

// ASSIGN_OR_RETURN(lhs, expr): evaluates a StatusOr, returns its status on
// error, otherwise moves the value into `lhs` (which may be a declaration).
#define ASSIGN_OR_RETURN(lhs, expr) \
  SHARDLM_ASSIGN_OR_RETURN_IMPL(SHARDLM_CONCAT(shardlm_statusor_, __LINE__), lhs, expr)
#define SHARDLM_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return std::move(tmp).status();      \
  lhs = std::move(tmp).value()

#endif  // SHARDLM_COMMON_BASE_STATUS_MACROS_H_
