// The admin REST API under /api: channels, the message browser (list, detail, replay), dead
// letters and the audit log. Every request needs `Authorization: Bearer <SWITCHBOARD_ADMIN_TOKEN>`
// (compared in constant time); without a configured token the API refuses everything.
// Thread-safety: handle() is called concurrently; the API holds no mutable state of its own.
#pragma once

#include <functional>
#include <optional>
#include <vector>
#include <memory>
#include <string>

#include "engine/core/clock.h"
#include "engine/core/http_types.h"
#include "engine/runtime/engine_config.h"
#include "engine/store/store.h"

namespace switchboard::admin {

class AdminApi {
 public:
  using ChannelsFn = std::function<std::shared_ptr<const runtime::ChannelList>()>;

  AdminApi(store::Store& store, ChannelsFn channels, std::string token,
           std::shared_ptr<core::Clock> clock, std::function<void()> onReplay);

  core::HttpResponse handle(const core::HttpRequest& request);

  // Further routes served behind the same authentication (e.g. the MPI under /api/mpi and
  // /fhir/Patient/$match). An extension returns nullopt for paths it does not serve. `actor`
  // names the authenticated caller for audit ("admin", or "admin:<X-Switchboard-User>").
  using Extension =
      std::function<std::optional<core::HttpResponse>(const core::HttpRequest&, const std::string& actor)>;
  void addExtension(Extension extension) { extensions_.push_back(std::move(extension)); }

 private:
  core::HttpResponse listChannels();
  core::HttpResponse listMessages(const core::HttpRequest& request);
  core::HttpResponse getMessage(std::int64_t id);
  core::HttpResponse replayMessage(std::int64_t id);
  core::HttpResponse listDeliveries(const core::HttpRequest& request);
  core::HttpResponse replayDelivery(std::int64_t id);
  core::HttpResponse listAudit(const core::HttpRequest& request);

  store::Store& store_;
  ChannelsFn channels_;
  std::string token_;
  std::shared_ptr<core::Clock> clock_;
  std::function<void()> onReplay_;
  std::vector<Extension> extensions_;
};

// Parses a time filter: epoch milliseconds, or an ISO 8601 date-time with zone.
std::optional<std::int64_t> parseTimeParam(const std::string& text);

}  // namespace switchboard::admin
