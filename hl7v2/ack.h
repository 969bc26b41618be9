// Building the original-mode acknowledgment (ACK: MSH, MSA, ERR...) for a received message,
// as in docs/hl7v2.md and protocols.md 4.5. Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "engine/core/error.h"
#include "hl7v2/message.h"

namespace switchboard::hl7v2 {

// Table 0008.
enum class AckCode { kAA, kAE, kAR, kCA, kCE, kCR };
std::string_view ackCodeText(AckCode code);

// ERR-2 Error Location (ERL): segment id ^ sequence ^ field ^ repetition ^ component ^
// subcomponent; zero numbers after the last non-zero one are left out.
struct ErrorLocation {
  std::string segment;  // empty: no location
  int sequence = 0;     // occurrence of the segment, 1-based
  int field = 0;
  int repetition = 0;
  int component = 0;
  int subcomponent = 0;
};

struct AckError {
  ErrorLocation location;   // ERR-2
  int code = 207;           // ERR-3.1, table 0357
  std::string codeText;     // ERR-3.2; "" = the table 0357 text for `code`
  char severity = 'E';      // ERR-4, table 0516: E, W or I
  std::string userMessage;  // ERR-8, optional
};

struct AckOptions {
  AckCode code = AckCode::kAA;
  std::string controlId;    // MSH-10 of the ACK, chosen by the caller
  std::string timestamp;    // MSH-7, e.g. "20250301101501"; the caller owns the clock
  std::string textMessage;  // MSA-3, optional (kept for older receivers)
  std::vector<AckError> errors;
};

// Table 0357 text for a code ("" when the code is not in the table).
std::string_view errorCodeText(int code);

// The ACK for `incoming`: same MSH-1/MSH-2 (so the same delimiters); MSH-3/4 and MSH-5/6
// swapped; MSH-7 = options.timestamp; MSH-9 = ACK^<incoming trigger>^ACK; MSH-10 =
// options.controlId; MSH-11 and MSH-12 copied; MSA-1 = the code, MSA-2 = incoming MSH-10;
// one ERR per error with ERR-3 = code^text^HL70357 and ERR-4 = severity. Every segment ends
// with CR. Fails (kValue) when a severity is not E, W or I, or a value cannot be encoded.
Result<Message> buildAck(const Message& incoming, const AckOptions& options);

// The ACK for raw bytes that may not parse (typically an AR or AE naming the parse error): when
// the first segment parses as an MSH on its own, the ACK is buildAck of that MSH (its delimiters,
// swapped applications, MSA-2 = its MSH-10); otherwise it uses the default delimiters `|^~\&`,
// leaves MSH-3..6, MSH-11, MSH-12 and MSA-2 empty and MSH-9 = ACK^^ACK.
Result<Message> buildAckForBytes(std::string_view raw, const AckOptions& options);

}  // namespace switchboard::hl7v2
