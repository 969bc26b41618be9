#include "engine/app/serve.h"

#include <signal.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "engine/admin/admin_api.h"
#include "engine/app/builtin_connectors.h"
#include "engine/runtime/channel_watcher.h"
#ifdef SWITCHBOARD_HAVE_MPI
#include "engine/mpi/match_config.h"
#include "engine/mpi/mpi_http.h"
#include "engine/mpi/mpi_service.h"
#include "engine/mpi/mpi_stage.h"
#include "engine/mpi/mpi_store.h"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#endif
#include "engine/runtime/engine.h"

namespace switchboard::app {

int runServe(int argc, char** argv) {
  std::string configPath = "conf/switchboard.json";
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--config" && i + 1 < argc) {
      configPath = argv[++i];
    } else if (arg.starts_with("--config=")) {
      configPath = arg.substr(9);
    } else {
      std::fprintf(stderr, "switchboard serve: unknown argument %s\nusage: switchboard serve [--config FILE]\n", arg.c_str());
      return 2;
    }
  }
  // Block the shutdown signals before any thread starts so every thread inherits the mask and
  // the main thread alone receives them through sigwait.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto config = runtime::loadEngineConfig(configPath);
  if (!config) {
    std::fprintf(stderr, "switchboard: configuration error: %s\n", config.error().message.c_str());
    return 2;
  }
  std::error_code ec;
  std::filesystem::create_directories(config->dataDir, ec);
  if (ec) {
    std::fprintf(stderr, "switchboard: cannot create data directory %s: %s\n", config->dataDir.c_str(), ec.message().c_str());
    return 2;
  }
  core::ConnectorRegistry registry;
  registerBuiltinConnectors(registry);
  auto clock = std::make_shared<core::SystemClock>();
#ifdef SWITCHBOARD_HAVE_MPI
  // The master patient index: its own tables beside the message store (same PostgreSQL database,
  // or var/mpi.db next to the SQLite store), its REST API behind the admin token.
  // Without <confDir>/mpi.json the MPI is off (the "mpi" stage type is then unknown).
  std::shared_ptr<mpi::MpiService> mpiService;
  if (const std::string mpiConfig = config->confDir + "/mpi.json"; std::filesystem::exists(mpiConfig)) {
    const std::string mpiUrl = config->storeUrl.starts_with("postgresql://") ? config->storeUrl
                                                                             : "sqlite:" + config->dataDir + "/mpi.db";
    auto matchConfig = mpi::MatchConfig::load(mpiConfig);
    if (!matchConfig) {
      std::fprintf(stderr, "switchboard: configuration error: %s\n", matchConfig.error().message.c_str());
      return 2;
    }
    auto mpiStore = mpi::MpiStore::open(mpiUrl);
    if (!mpiStore) {
      std::fprintf(stderr, "switchboard: cannot open the MPI store: %s\n", mpiStore.error().message.c_str());
      return 1;
    }
    auto service = mpi::MpiService::open(std::move(*matchConfig), std::move(*mpiStore), clock.get());
    if (!service) {
      std::fprintf(stderr, "switchboard: cannot start the MPI: %s\n", service.error().message.c_str());
      return 1;
    }
    mpiService = std::move(*service);
    mpi::registerMpiStage(registry, mpiService);
  }
#endif

  core::ConnectorContext context{"", config->dataDir, config->confDir};
  auto channels = runtime::loadChannels(config->channelsDir, registry, context);
  if (!channels) {
    std::fprintf(stderr, "switchboard: configuration error: %s\n", channels.error().message.c_str());
    return 2;
  }
#ifdef SWITCHBOARD_HAVE_MPI
  if (!config->mpiMergeChannel.empty()) {
    bool found = false;
    for (const auto& c : *channels) found = found || c->id == config->mpiMergeChannel;
    if (!mpiService || !found) {
      std::fprintf(stderr,
                   "switchboard: configuration error: %s: /mpi/merge_channel: %s\n", config->configPath.c_str(),
                   !mpiService ? "the MPI is off (no mpi.json beside the engine config)"
                               : ("expected the id of a loaded channel; no channel \"" + config->mpiMergeChannel +
                                  "\" is enabled")
                                     .c_str());
      return 2;
    }
  }
#endif
  auto store = store::openStore(config->storeUrl, config->storePool);
  if (!store) {
    std::fprintf(stderr, "switchboard: cannot open store: %s\n", store.error().message.c_str());
    return 1;
  }
  auto engine = std::make_unique<runtime::Engine>(*config, std::move(*store), std::move(*channels), clock,
                                                  std::make_shared<core::SeededRandom>());
  auto* enginePtr = engine.get();
  auto admin = std::make_shared<admin::AdminApi>(
      engine->store(), [enginePtr] { return enginePtr->channels(); }, config->adminToken, clock, nullptr);
#ifdef SWITCHBOARD_HAVE_MPI
  if (mpiService) {
    // A reviewer's merge or undo changes the EHR too: its Bundle goes through the configured
    // channel (retries, dead letters, replay) like any other message.
    const std::string mergeChannel = config->mpiMergeChannel;
    admin->addExtension([mpiService, enginePtr, mergeChannel](const core::HttpRequest& r, const std::string& actor) {
      auto answer = mpi::routeMpiHttp(*mpiService, r, actor);
      if (answer && answer->status == 200 && !mergeChannel.empty() && r.method == "POST" &&
          r.path.starts_with("/api/mpi/reviews/")) {
        rapidjson::Document doc;
        doc.Parse(answer->body.data(), answer->body.size());
        if (!doc.HasParseError() && doc.IsObject() && doc.HasMember("bundle") && doc["bundle"].IsObject()) {
          rapidjson::StringBuffer buffer;
          rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
          doc["bundle"].Accept(w);
          core::InboundMessage m;
          m.contentType = "application/fhir+json";
          m.body.assign(buffer.GetString(), buffer.GetSize());
          m.metadata = {{"kind", "mpi-merge"}, {"actor", actor}, {"review_path", r.path}};
          // The reviewer sees whether the EHR update is on its way (and where to follow it).
          auto id = enginePtr->ingestInternal(mergeChannel, std::move(m));
          rapidjson::Value status(rapidjson::kObjectType);
          auto& alloc = doc.GetAllocator();
          status.AddMember("channel", rapidjson::Value(mergeChannel.c_str(), alloc), alloc);
          status.AddMember("queued", id.has_value(), alloc);
          if (id) {
            status.AddMember("messageId", static_cast<int64_t>(*id), alloc);
          } else {
            std::fprintf(stderr, "switchboard: MPI merge Bundle not queued: %s\n", id.error().message.c_str());
            status.AddMember("error", rapidjson::Value(id.error().message.c_str(), alloc), alloc);
          }
          doc.AddMember("ehrUpdate", status, alloc);
          rapidjson::StringBuffer out;
          rapidjson::Writer<rapidjson::StringBuffer> ow(out);
          doc.Accept(ow);
          answer->body.assign(out.GetString(), out.GetSize());
        }
      }
      return answer;
    });
  }
#endif
  engine->setAdminHandler([admin](const core::HttpRequest& r) { return admin->handle(r); });
  try {
    engine->start();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "switchboard: cannot listen on %s:%d: %s\n", config->bind.c_str(), config->port, e.what());
    return 1;
  }
  {
    std::ofstream portFile(config->dataDir + "/switchboard.port", std::ios::trunc);
    portFile << engine->port() << "\n";
  }
  std::fprintf(stdout, "switchboard: listening on %s:%d with %zu channel(s), store %s\n", config->bind.c_str(),
               engine->port(), enginePtr->channels()->size(), engine->store().backend().c_str());
  std::fflush(stdout);
  // Channel configs reload when their files change (checked each second) or on SIGHUP.
  auto watcher = std::make_unique<runtime::ChannelWatcher>(
      *engine, config->channelsDir, registry, context, [](const std::string& line) {
        std::fprintf(stderr, "switchboard: %s\n", line.c_str());
      });
  int sig = 0;
  for (;;) {
    sigwait(&signals, &sig);
    if (sig != SIGHUP) break;
    watcher->reloadNow(true);
  }
  watcher.reset();
  std::fprintf(stdout, "switchboard: %s received, shutting down\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  std::fflush(stdout);
  engine->stop();
  std::fprintf(stdout, "switchboard: stopped\n");
  return 0;
}

}  // namespace switchboard::app
