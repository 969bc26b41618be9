// Splits a verified Meta WhatsApp Cloud API webhook body into one inbound message per
// entry[].changes[].value.messages[] item and per statuses[] item, following the shared source
// contract: each body is a reduced webhook holding exactly that item, with metadata keys provider,
// kind, sender, sender_raw, reply_to, reply_from, provider_message_id (and flow_token, warning,
// outbound_id, status, error where they apply).
// Thread-safety: pure function.
#pragma once

#include <string_view>
#include <vector>

#include "engine/core/error.h"
#include "engine/core/message.h"

namespace switchboard::channels::whatsapp {

// The messages carried by `body`, in payload order; empty when the webhook carries neither
// messages nor statuses (e.g. another webhook field). Fails with kStructure for malformed JSON or
// a body that is not a WhatsApp Business Account webhook, and with kRequired when an item lacks
// the id its idempotency key needs; the error's location is the JSON pointer of the culprit.
Result<std::vector<core::InboundMessage>> splitMetaWebhook(std::string_view body);

}  // namespace switchboard::channels::whatsapp
