// Small, security-relevant helpers shared by every source connector: constant-time comparison of
// secrets and signatures, and E.164 normalisation of provider phone identifiers (Meta wa_id
// "16505551234", 8x8 msisdn "+16505551234", Twilio "whatsapp:+16505551234").
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

namespace switchboard::core {

// Constant-time comparison of two byte strings: the time depends only on the lengths, never on
// where the first difference is.
bool constantTimeEquals(std::string_view a, std::string_view b);

// "+" and 7 to 15 digits, the first not 0, from a phone number written with or without "+".
// With `allowSeparators`, spaces, '-', '.', '(' and ')' between digits are ignored ("+1 (555)
// 123-4567"). Anything else (a WhatsApp BSUID such as "US.13491208655302741918", a username, an
// empty string) yields "": the caller keeps the raw identifier separately.
std::string normalizeE164(std::string_view raw, bool allowSeparators = true);

}  // namespace switchboard::core
