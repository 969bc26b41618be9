// The `whatsapp` source: Meta WhatsApp Cloud API webhooks at one exact path. GET answers Meta's
// verification handshake (hub.mode, hub.verify_token, hub.challenge); POST is verified with
// X-Hub-Signature-256 against any configured app secret (rotation) and split into one message per
// messages[] and statuses[] item (see meta_webhook.h for the contract).
// Thread-safety: immutable after construction; handle() is safe to call concurrently.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/core/connector.h"

namespace switchboard::channels::whatsapp {

struct WhatsappSourceConfig {
  std::string path;
  std::size_t maxBodyBytes = 1 << 20;
  std::vector<std::string> appSecrets;  // any one of them may have signed a POST
  std::string verifyToken;              // expected hub.verify_token of the GET handshake
};

class WhatsappSource final : public core::HttpSource {
 public:
  explicit WhatsappSource(WhatsappSourceConfig config);
  const std::string& path() const override { return config_.path; }
  std::size_t maxBodyBytes() const override { return config_.maxBodyBytes; }
  // GET: 200 text/plain with hub.challenge, or refuse 403. POST: refuse 401 on a missing or wrong
  // signature; reject 400 (kept, visible) when the signed body is unusable; respond 200 when it
  // carries nothing to keep; otherwise accept one message per item and answer 200 EVENT_RECEIVED.
  core::SourceVerdict handle(const core::HttpRequest& request) const override;

  // Config keys: path, max_body_bytes, app_secrets (array) and/or app_secret, verify_token.
  static Result<std::unique_ptr<core::HttpSource>> create(core::ConfigReader& config,
                                                          const core::ConnectorContext& ctx);

 private:
  core::SourceVerdict handshake(const core::HttpRequest& request) const;
  core::SourceVerdict notification(const core::HttpRequest& request) const;

  WhatsappSourceConfig config_;
};

}  // namespace switchboard::channels::whatsapp
