// Reloads conf/channels/*.json when the files change (polled once a second) or on request
// (SIGHUP). A directory that fails to load is reported with its error and the running channels
// stay as they were: nothing half-loads.
// Thread-safety: one background thread; reloadNow() may be called from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "engine/core/connector.h"
#include "engine/runtime/engine.h"

namespace switchboard::runtime {

class ChannelWatcher {
 public:
  // `report` receives one line per reload attempt (no PHI: file names and config errors only).
  ChannelWatcher(Engine& engine, std::string channelsDir, const core::ConnectorRegistry& registry,
                 core::ConnectorContext context, std::function<void(const std::string&)> report,
                 int pollMs = 1000);
  ~ChannelWatcher();
  ChannelWatcher(const ChannelWatcher&) = delete;
  ChannelWatcher& operator=(const ChannelWatcher&) = delete;

  // Reloads at once if the directory changed since the last load (or `force`). Returns true when
  // a new channel list was swapped in.
  bool reloadNow(bool force = false);

 private:
  std::string fingerprint() const;
  void run();

  Engine& engine_;
  std::string dir_;
  const core::ConnectorRegistry& registry_;
  core::ConnectorContext context_;
  std::function<void(const std::string&)> report_;
  int pollMs_;
  std::mutex mutex_;  // serialises reloads
  std::string loaded_;
  std::mutex waitMutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace switchboard::runtime
