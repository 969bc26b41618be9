// The `scheduling` source: webhooks of a hospital scheduling system (appointmentCreated,
// appointmentRescheduled, appointmentCanceled, Queued, patientCreated). Each facility has its own
// API key; the key a request carries (a configured header, default X-API-Key, or
// `Authorization: Bearer`) names the facility, which becomes the message's `facility` metadata.
// The raw body is what gets stored. The accepted shapes are written down in docs/scheduling.md.
// Thread-safety: immutable after construction; handle() is safe to call concurrently.
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/connector.h"

namespace switchboard::channels::scheduling {

// One facility's key, kept only as its SHA-256 so every comparison takes the same time whatever
// the lengths of the configured and presented keys.
struct FacilityKey {
  std::string facility;
  std::array<unsigned char, 32> digest{};
};

struct SchedulingSourceConfig {
  std::string path;
  std::size_t maxBodyBytes = 64 << 10;
  std::string header = "X-API-Key";
  std::vector<FacilityKey> keys;
};

// The canonical facts of one webhook, as the source reads them (both spellings folded).
struct SchedulingEvent {
  std::string event;  // appointmentCreated | appointmentRescheduled | appointmentCanceled |
                      // Queued | patientCreated
  std::string appointmentId;
  std::string patientId;
  std::string temporaryPatientId;
  std::string status;     // SCHEDULED | RESCHEDULED | CANCELED | CONFIRMED | SHOW | NO SHOW; empty
                          // for patientCreated
  std::string timestamp;  // the payload's own event time when it has one
  std::string phone;      // as received
};

// Reads a webhook body (see docs/scheduling.md). Errors carry the code (structure, required,
// value, code-invalid) and the JSON pointer of the field at fault; `httpStatus` is 400 for a body
// that is not a JSON object, 422 otherwise.
struct ParseError {
  Error error;
  int httpStatus = 422;
};
std::expected<SchedulingEvent, ParseError> parseEvent(std::string_view body);

// The idempotency key of an event received for `facility`: a provider's redelivery of the same
// event gives the same key, a later status change of the same appointment another one.
std::string idempotencyKey(const std::string& facility, const SchedulingEvent& event,
                           std::string_view body);

// The facility whose key is `presented`, or nothing. Compares against every key, always.
std::optional<std::string> facilityForKey(const std::vector<FacilityKey>& keys,
                                          std::string_view presented);

class SchedulingSource final : public core::HttpSource {
 public:
  explicit SchedulingSource(SchedulingSourceConfig config);
  const std::string& path() const override { return config_.path; }
  std::size_t maxBodyBytes() const override { return config_.maxBodyBytes; }
  core::SourceVerdict handle(const core::HttpRequest& request) const override;

  // Reads `path` (required), `max_body_bytes`, `header`, `keys` (objects of `facility` and one of
  // `key_env` / `key_file`) and `keys_file` (lines "facility key"). Key values never come from the
  // config text itself. At least one key; a key shared by two facilities is an error.
  static Result<std::unique_ptr<core::HttpSource>> create(core::ConfigReader& config,
                                                          const core::ConnectorContext& ctx);

 private:
  SchedulingSourceConfig config_;
};

}  // namespace switchboard::channels::scheduling
