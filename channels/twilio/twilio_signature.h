// Twilio request validation primitives (X-Twilio-Signature), following twilio-python's
// RequestValidator and twilio-node's webhooks.ts: Base64(HMAC-SHA1(auth token, URL + for each
// parameter name sorted by code point, each distinct value sorted: name + value)).
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/core/identifiers.h"

namespace switchboard::channels::twilio {

using Params = std::vector<std::pair<std::string, std::string>>;  // decoded, in received order

// The string Twilio signs: `url` followed by name+value of every parameter, names sorted
// bytewise (UTF-8 order = code point order), a repeated name contributing each distinct value,
// sorted, without separators.
std::string signingString(std::string_view url, const Params& params);

// Base64(HMAC-SHA1(key = authToken, data = signingString(url, params))).
std::string computeSignature(std::string_view authToken, std::string_view url,
                             const Params& params);

// The URLs a signature may have been computed over: `url` with its port (":443" for https and
// ":80" for http added when absent) and without any port. Duplicates removed; `url` itself is
// returned alone when it cannot be split into scheme://authority.
std::vector<std::string> signatureUrlVariants(std::string_view url);

// Lower-case hex SHA-256 of `data` (the bodySHA256 query parameter of JSON webhooks).
std::string sha256Hex(std::string_view data);

// Constant-time comparison of two byte strings (time depends only on the lengths).
using core::constantTimeEquals;

}  // namespace switchboard::channels::twilio
