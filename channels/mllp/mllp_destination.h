// The `mllp` destination: sends the stage output (an HL7 v2 message in ER7) framed over a kept
// TCP connection and waits for its original-mode ACK. AA/CA -> Ok (MSA-2 and the ACK kept as the
// response), AE/CE -> Retry, AR/CR -> Fail with the ERR text; refused connection, timeout, closed
// connection or a garbled ACK -> Retry; an ACK for another control id -> Retry (the connection is
// dropped, since answers and requests no longer pair up). See docs/mllp.md.
// Thread-safety: send() is called from several delivery threads; one connection is used at a time
// (a mutex serialises sends, as original-mode MLLP pairs one answer with one message).
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "channels/mllp/socket_io.h"
#include "engine/core/connector.h"

namespace switchboard::channels::mllp {

struct MllpDestinationConfig {
  std::string host;
  int port = 0;
  int connectTimeoutMs = 5000;
  int ackTimeoutMs = 30000;
  std::size_t maxAckBytes = 1 << 20;
  bool checkControlId = true;
};

class MllpDestination final : public core::Destination {
 public:
  explicit MllpDestination(MllpDestinationConfig config);
  std::string endpointKey() const override {
    return "mllp://" + config_.host + ":" + std::to_string(config_.port);
  }
  core::DeliveryResult send(const core::DeliveryRequest& request) override;

  static Result<std::unique_ptr<core::Destination>> create(core::ConfigReader& config,
                                                           const core::ConnectorContext& ctx);

 private:
  core::DeliveryResult exchange(std::string_view payload, const std::string& controlId);

  MllpDestinationConfig config_;
  std::mutex mutex_;
  Socket connection_;  // guarded by mutex_; kept between sends, dropped after any failure
};

}  // namespace switchboard::channels::mllp
