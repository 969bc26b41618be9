#include "engine/runtime/channel_watcher.h"

#include <algorithm>
#include <filesystem>
#include <vector>

#include "engine/core/thread_name.h"
#include "engine/runtime/engine_config.h"

namespace switchboard::runtime {

ChannelWatcher::ChannelWatcher(Engine& engine, std::string channelsDir, const core::ConnectorRegistry& registry,
                               core::ConnectorContext context, std::function<void(const std::string&)> report,
                               int pollMs)
    : engine_(engine),
      dir_(std::move(channelsDir)),
      registry_(registry),
      context_(std::move(context)),
      report_(std::move(report)),
      pollMs_(pollMs) {
  loaded_ = fingerprint();
  thread_ = std::thread([this] {
    core::nameThisThread("sb-watch");
    run();
  });
}

ChannelWatcher::~ChannelWatcher() {
  {
    std::lock_guard lock(waitMutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::string ChannelWatcher::fingerprint() const {
  namespace fs = std::filesystem;
  std::vector<std::string> parts;
  std::error_code ec;
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& p = it->path();
    if (p.extension() != ".json") continue;
    std::error_code e1, e2;
    auto size = fs::file_size(p, e1);
    auto time = fs::last_write_time(p, e2);
    parts.push_back(p.filename().string() + ":" + std::to_string(e1 ? 0 : size) + ":" +
                    std::to_string(e2 ? 0 : time.time_since_epoch().count()));
  }
  std::sort(parts.begin(), parts.end());
  std::string out;
  for (const auto& part : parts) out += part + "\n";
  return out;
}

bool ChannelWatcher::reloadNow(bool force) {
  std::lock_guard lock(mutex_);
  std::string now = fingerprint();
  if (!force && now == loaded_) return false;
  auto channels = loadChannels(dir_, registry_, context_);
  loaded_ = now;  // do not retry a broken directory every second; the next edit triggers again
  if (!channels) {
    report_("channel reload rejected, previous channels stay active: " + channels.error().message);
    return false;
  }
  const std::size_t count = channels->size();
  engine_.replaceChannels(std::move(*channels));
  report_("channels reloaded: " + std::to_string(count) + " channel(s) active");
  return true;
}

void ChannelWatcher::run() {
  for (;;) {
    {
      std::unique_lock lock(waitMutex_);
      if (wake_.wait_for(lock, std::chrono::milliseconds(pollMs_), [&] { return stopping_; })) return;
    }
    reloadNow(false);
  }
}

}  // namespace switchboard::runtime
