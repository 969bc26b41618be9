// E.164 normalisation of provider phone identifiers (Meta wa_id "16505551234", 8x8 msisdn
// "+16505551234"). The rule itself is core::normalizeE164; Meta ids carry no separators, so none are accepted.
// Thread-safety: pure function.
#pragma once

#include <string>
#include <string_view>

#include "engine/core/identifiers.h"

namespace switchboard::channels::whatsapp {

// "+" followed by 7 to 15 digits, the first not 0, from `raw` written with or without a leading
// "+". Anything else (a BSUID such as "US.13491208655302741918", a username, separators, an empty
// string) yields an empty string: the caller keeps the raw identifier separately.
inline std::string normalizeE164(std::string_view raw) { return core::normalizeE164(raw, /*allowSeparators=*/false); }

}  // namespace switchboard::channels::whatsapp
