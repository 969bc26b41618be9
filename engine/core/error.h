// Error values for the message path: every parse, map, validate and send returns Result<T>.
// Thread-safety: plain values, safe to copy across threads.
#pragma once

#include <expected>
#include <string>
#include <utility>

namespace switchboard {

// Codes follow FHIR's IssueType (http://hl7.org/fhir/issue-type) so an Error maps onto an
// OperationOutcome issue without translation.
enum class ErrorCode {
  kInvalid,        // "invalid": content is malformed
  kStructure,      // "structure": structural issue (bad JSON, broken segment)
  kRequired,       // "required": a required element is missing
  kValue,          // "value": an element value is invalid
  kInvariant,      // "invariant": a constraint failed
  kSecurity,       // "security": authentication or signature failure
  kNotFound,       // "not-found"
  kTooLong,        // "too-long": size limit exceeded
  kCodeInvalid,    // "code-invalid": code not in value set / no translation
  kConflict,       // "conflict"
  kDuplicate,      // "duplicate"
  kTransient,      // "transient": retry may succeed
  kTimeout,        // "timeout"
  kThrottled,      // "throttled": backpressure
  kNotSupported,   // "not-supported"
  kException,      // "exception": unexpected internal error
};

// FHIR IssueType code for an ErrorCode, e.g. "invalid".
const char* issueTypeCode(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kException;
  std::string message;   // human readable, free of PHI
  std::string location;  // FHIRPath, JSON pointer or HL7 path of the offending element; may be empty

  Error() = default;
  Error(ErrorCode c, std::string msg, std::string loc = {})
      : code(c), message(std::move(msg)), location(std::move(loc)) {}
};

template <typename T>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> fail(ErrorCode code, std::string message, std::string location = {}) {
  return std::unexpected<Error>(Error(code, std::move(message), std::move(location)));
}

}  // namespace switchboard
