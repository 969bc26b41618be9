// Input normalisation for mapping files: finds the WhatsApp Flow response in whatever the channel
// stored (a bare Flow response object, a whole Meta webhook body, one Meta message item, or an
// 8x8 inbound_message_received body, v2 or v3) and parses its string-encoded JSON.
// Thread-safety: pure functions; the returned document is immutable and shareable.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "engine/core/error.h"
#include "engine/fhirpath/fhirpath.h"

namespace switchboard::mapping {

struct FlowInput {
  fhirpath::Node root;    // the Flow response object (what `{{ field }}` navigates)
  std::string format;     // "flow-response" | "meta-webhook" | "meta-message" | "8x8"
  std::string sender;     // E.164 of the patient when the envelope names it, else empty
  std::string messageId;  // wamid / umid when the envelope has one
  std::string location;   // JSON pointer of the Flow response inside the input ("" when bare)
};

// Finds and parses the Flow response. Errors: kStructure for JSON that does not parse (the
// outer body or the string-encoded response, naming its JSON pointer), kInvalid for a webhook
// that carries no Flow reply.
Result<FlowInput> normalizeFlowInput(std::string_view body);

// Where the Flow response sits in a parsed body: the same search as normalizeFlowInput() over
// any RapidJSON tree, with `parse` turning the string-encoded response into JSON (its error
// message is quoted). `response` points into the body's tree or into what `parse` returned.
struct FlowParts {
  const rapidjson::Value* response = nullptr;
  std::string format, sender, messageId, location;  // as in FlowInput
};
using JsonParser = std::function<Result<const rapidjson::Value*>(std::string_view text)>;
Result<FlowParts> locateFlowResponse(const rapidjson::Value& root, const JsonParser& parse);

// The input as it is (mapping files with "input": "json").
Result<FlowInput> parseJsonInput(std::string_view body);

// "+15551234567" from "15551234567", "+1 555 123-4567" or "whatsapp:+15551234567"; empty when
// the text is not a plausible E.164 number (e.g. a WhatsApp BSUID).
std::string normalizeE164(std::string_view raw);

}  // namespace switchboard::mapping
