#include "engine/core/error.h"

namespace switchboard {

const char* issueTypeCode(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalid: return "invalid";
    case ErrorCode::kStructure: return "structure";
    case ErrorCode::kRequired: return "required";
    case ErrorCode::kValue: return "value";
    case ErrorCode::kInvariant: return "invariant";
    case ErrorCode::kSecurity: return "security";
    case ErrorCode::kNotFound: return "not-found";
    case ErrorCode::kTooLong: return "too-long";
    case ErrorCode::kCodeInvalid: return "code-invalid";
    case ErrorCode::kConflict: return "conflict";
    case ErrorCode::kDuplicate: return "duplicate";
    case ErrorCode::kTransient: return "transient";
    case ErrorCode::kTimeout: return "timeout";
    case ErrorCode::kThrottled: return "throttled";
    case ErrorCode::kNotSupported: return "not-supported";
    case ErrorCode::kException: return "exception";
  }
  return "exception";
}

}  // namespace switchboard
