#include "engine/runtime/engine_config.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <random>

namespace switchboard::runtime {

namespace fs = std::filesystem;

namespace {

std::string defaultNodeId() {
  char host[256] = {0};
  if (::gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  std::random_device rd;
  char suffix[9];
  std::snprintf(suffix, sizeof(suffix), "%08x", rd());
  return std::string(host[0] ? host : "node") + ":" + std::to_string(::getpid()) + ":" + suffix;
}

const char* envOrNull(const char* name) {
  const char* v = std::getenv(name);
  return (v != nullptr && *v != '\0') ? v : nullptr;
}

}  // namespace

Result<EngineConfig> loadEngineConfig(const std::string& path) {
  auto file = core::loadConfigFile(path);
  if (!file) return std::unexpected(file.error());
  EngineConfig c;
  c.configPath = path;
  c.confDir = fs::path(path).parent_path().string();
  if (c.confDir.empty()) c.confDir = ".";
  core::ConfigReader r(*file->document, path, "");
  c.nodeId = r.string("node_id", "", "lease owner name of this engine process; default host:pid:random");
  c.dataDir = r.string("data_dir", "var", "directory for the embedded store and other state");
  c.channelsDir = r.string("channels_dir", "channels", "directory of channel configs, relative to this file");
  if (const auto* http = r.object("http", false, "HTTP listener")) {
    core::ConfigReader h = r.child(*http, "http");
    c.bind = h.string("bind", c.bind, "listen address");
    c.port = static_cast<int>(h.integer("port", c.port, 0, 65535, "listen port; 0 picks a free one"));
    c.httpThreads = static_cast<int>(
        h.integer("threads", c.httpThreads, 1, 1024, "worker threads for blocking endpoints (admin, health, metrics)"));
    c.httpQueue = static_cast<int>(h.integer("queue", c.httpQueue, 1, 65536, "blocking requests waiting for a worker"));
    c.httpIoThreads = static_cast<int>(h.integer("io_threads", c.httpIoThreads, 0, 64, "event loops; 0: one per core, at most 2"));
    c.httpMaxConnections = static_cast<int>(h.integer("max_connections", c.httpMaxConnections, 1, 1000000, "open connections; beyond: 503"));
    c.httpIdleTimeoutMs = static_cast<int>(h.integer("idle_timeout_ms", c.httpIdleTimeoutMs, 1, 3600000, "idle keep-alive connection lifetime"));
    c.httpHeaderTimeoutMs = static_cast<int>(h.integer("header_timeout_ms", c.httpHeaderTimeoutMs, 1, 3600000, "longest time to receive a request head; 408 after"));
    if (auto e = h.finish(); !e) return std::unexpected(e.error());
  }
  if (const auto* store = r.object("store", false, "message store")) {
    core::ConfigReader s = r.child(*store, "store");
    c.storeUrl = s.string("url", "", "sqlite:PATH or postgresql://CONNINFO; default sqlite:<data_dir>/switchboard.db");
    c.storePool = static_cast<int>(s.integer("pool", c.storePool, 1, 64, "database sessions"));
    if (auto e = s.finish(); !e) return std::unexpected(e.error());
  }
  if (const auto* intake = r.object("intake", false, "intake and backpressure")) {
    core::ConfigReader i = r.child(*intake, "intake");
    c.groupCommitMaxBatch = static_cast<int>(i.integer("group_commit_max_batch", c.groupCommitMaxBatch, 1, 10000, "most messages per commit"));
    c.intakeCommitters = static_cast<int>(i.integer("committers", c.intakeCommitters, 1, 16, "group commits in flight at once"));
    c.commitWindowMs =
        static_cast<int>(i.integer("commit_window_ms", c.commitWindowMs, 0, 1000,
                                   "under load, how long a commit waits for more messages"));
    c.maxPendingIntake = static_cast<int>(i.integer("max_pending", c.maxPendingIntake, 1, 1000000, "messages waiting for a commit before intake answers 503"));
    c.maxBacklog = i.integer("max_backlog", c.maxBacklog, 1, 1LL << 40, "stored unprocessed messages plus pending deliveries before intake answers 503");
    c.retryAfterSeconds = static_cast<int>(i.integer("retry_after_seconds", c.retryAfterSeconds, 1, 3600, "Retry-After sent with 503"));
    if (auto e = i.finish(); !e) return std::unexpected(e.error());
  }
  if (const auto* workers = r.object("workers", false, "pipeline and delivery workers")) {
    core::ConfigReader w = r.child(*workers, "workers");
    c.pipelineThreads = static_cast<int>(w.integer("pipeline_threads", c.pipelineThreads, 1, 256, "pipeline threads"));
    c.deliveryThreads = static_cast<int>(w.integer("delivery_threads", c.deliveryThreads, 1, 256, "delivery threads"));
    c.leaseMs = w.integer("lease_ms", c.leaseMs, 100, 3600000, "lease on a claimed message or delivery");
    c.claimBatch = static_cast<int>(w.integer("claim_batch", c.claimBatch, 1, 10000, "messages claimed at once"));
    c.deliveryClaimBatch = static_cast<int>(w.integer("delivery_claim_batch", c.deliveryClaimBatch, 1, 10000, "deliveries claimed at once"));
    c.idlePollMs = static_cast<int>(w.integer("idle_poll_ms", c.idlePollMs, 1, 60000, "poll interval when idle"));
    c.pipelineWindowMs =
        static_cast<int>(w.integer("pipeline_window_ms", c.pipelineWindowMs, 0, 1000,
                                   "under load, how long a pipeline pass waits for more messages"));
    c.handoffMax = static_cast<int>(
        w.integer("handoff_max", c.handoffMax, 0, 1000000, "messages handed from intake to the pipeline"));
    if (auto e = w.finish(); !e) return std::unexpected(e.error());
  }
  if (const auto* cb = r.object("circuit_breaker", false, "per-endpoint circuit breaker")) {
    core::ConfigReader b = r.child(*cb, "circuit_breaker");
    c.breakerFailureThreshold = static_cast<int>(b.integer("failure_threshold", c.breakerFailureThreshold, 1, 1000, "consecutive transient failures that open the circuit"));
    c.breakerOpenMs = b.integer("open_ms", c.breakerOpenMs, 10, 3600000, "how long an open circuit waits before a probe");
    if (auto e = b.finish(); !e) return std::unexpected(e.error());
  }
  if (const auto* admin = r.object("admin", false, "admin API")) {
    core::ConfigReader a = r.child(*admin, "admin");
    c.adminToken = a.string("token", "", "bearer token; use ${env:...} or ${file:...}");
    if (auto e = a.finish(); !e) return std::unexpected(e.error());
  }
  if (const auto* mpi = r.object("mpi", false, "master patient index")) {
    core::ConfigReader m = r.child(*mpi, "mpi");
    c.mpiMergeChannel = m.string("merge_channel", "", "channel that carries reviewers' merges and undos to the EHR");
    if (auto e = m.finish(); !e) return std::unexpected(e.error());
  }
  if (auto e = r.finish(); !e) return std::unexpected(e.error());

  if (const char* v = envOrNull("SWITCHBOARD_PORT")) {
    char* end = nullptr;
    long port = std::strtol(v, &end, 10);
    if (end == v || *end != '\0' || port < 0 || port > 65535) {
      return fail(ErrorCode::kInvalid, "SWITCHBOARD_PORT: expected a port number 0-65535, found \"" + std::string(v) + "\"");
    }
    c.port = static_cast<int>(port);
  }
  if (const char* v = envOrNull("SWITCHBOARD_DATA_DIR")) c.dataDir = v;
  if (const char* v = envOrNull("SWITCHBOARD_ADMIN_TOKEN")) c.adminToken = v;
  if (c.nodeId.empty()) c.nodeId = defaultNodeId();
  if (c.storeUrl.empty()) c.storeUrl = "sqlite:" + c.dataDir + "/switchboard.db";
  if (fs::path(c.channelsDir).is_relative()) c.channelsDir = (fs::path(c.confDir) / c.channelsDir).string();
  return c;
}

std::int64_t backoffMs(const RetryPolicy& policy, int attempt, double random) {
  double delay = static_cast<double>(policy.initialBackoffMs) *
                 std::pow(policy.multiplier, std::max(0, attempt - 1));
  delay = std::min(delay, static_cast<double>(policy.maxBackoffMs));
  delay *= 1.0 + policy.jitter * (2.0 * random - 1.0);
  return std::max<std::int64_t>(1, static_cast<std::int64_t>(delay));
}

const ChannelDestination* Channel::destination(const std::string& name) const {
  for (const auto& d : destinations) {
    if (d.name == name) return &d;
  }
  return nullptr;
}

namespace {

template <typename T>
Result<std::unique_ptr<T>> build(const core::Factory<T>* factory, const rapidjson::Value& node,
                                 const std::string& file, const std::string& pointer,
                                 const core::ConnectorContext& ctx) {
  core::ConfigReader reader(node, file, pointer);
  reader.skip("type");
  reader.skip("name");
  reader.skip("after");  // destinations: read by loadChannel
  return (*factory)(reader, ctx);
}

std::string typeOf(const rapidjson::Value& node) {
  if (!node.IsObject()) return {};
  auto it = node.FindMember("type");
  if (it == node.MemberEnd() || !it->value.IsString()) return {};
  return it->value.GetString();
}

std::string joinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

}  // namespace

Result<std::shared_ptr<Channel>> loadChannel(const std::string& path,
                                             const core::ConnectorRegistry& registry,
                                             const core::ConnectorContext& baseContext) {
  auto file = core::loadConfigFile(path);
  if (!file) return std::unexpected(file.error());
  auto channel = std::make_shared<Channel>();
  channel->file = path;
  core::ConfigReader r(*file->document, path, "");
  channel->id = r.requiredString("id", "channel id: letters, digits, '-' and '_'");
  for (char ch : channel->id) {
    bool ok = std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_';
    if (!ok) {
      r.invalid("id", "letters, digits, '-' and '_' only");
      break;
    }
  }
  channel->description = r.string("description", "", "free text");
  bool enabled = r.boolean("enabled", true, "false skips this channel");
  // A shipped channel waits for its deployment's secrets: when a variable named here is unset or
  // empty the channel is skipped with a notice, so a fresh engine starts without them.
  std::vector<std::string> missingEnv;
  for (const auto& name : r.strings("requires_env", "environment variables this channel needs; skipped while one is unset")) {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr || *v == '\0') missingEnv.push_back(name);
  }
  const auto* source = r.object("source", true, "the source connector");
  r.skip("filter");  // one stage object or an array of them, read below
  r.skip("transformer");  // one stage object or an array run in order (e.g. mapping, then mpi)
  const auto* destinations = r.array("destinations", true, "one or more destination connectors");
  const auto* retry = r.object("retry", false, "delivery retry policy");
  if (auto e = r.finish(); !e) return std::unexpected(e.error());
  if (!enabled) return std::shared_ptr<Channel>();
  if (!missingEnv.empty()) {
    std::string names;
    for (const auto& n : missingEnv) names += (names.empty() ? "" : ", ") + n;
    std::fprintf(stderr, "switchboard: channel %s (%s) is off until %s %s set\n", channel->id.c_str(), path.c_str(),
                 names.c_str(), missingEnv.size() == 1 ? "is" : "are");
    return std::shared_ptr<Channel>();
  }

  core::ConnectorContext ctx = baseContext;
  ctx.channelId = channel->id;

  // Source.
  channel->sourceType = typeOf(*source);
  const auto* sourceFactory = registry.source(channel->sourceType);
  if (sourceFactory == nullptr) {
    return std::unexpected(core::configError(
        path, "/source/type", "a source type, one of: " + joinNames(registry.sourceTypes())));
  }
  auto src = build(sourceFactory, *source, path, "/source", ctx);
  if (!src) return std::unexpected(src.error());
  channel->source = std::move(*src);

  // Filters: one object or an array of objects.
  auto filterIt = file->document->FindMember("filter");
  if (filterIt != file->document->MemberEnd()) {
    std::vector<std::pair<const rapidjson::Value*, std::string>> nodes;
    if (filterIt->value.IsArray()) {
      rapidjson::SizeType i = 0;
      for (const auto& f : filterIt->value.GetArray()) nodes.emplace_back(&f, "/filter/" + std::to_string(i++));
    } else {
      nodes.emplace_back(&filterIt->value, "/filter");
    }
    for (const auto& [node, pointer] : nodes) {
      std::string type = typeOf(*node);
      const auto* factory = registry.stage(type);
      if (factory == nullptr) {
        return std::unexpected(core::configError(
            path, pointer + "/type", "a stage type, one of: " + joinNames(registry.stageTypes())));
      }
      auto stage = build(factory, *node, path, pointer, ctx);
      if (!stage) return std::unexpected(stage.error());
      channel->filters.emplace_back(type, std::move(*stage));
    }
  }

  // Transformers: one object or an array of objects run in order; default passthrough.
  auto transformerIt = file->document->FindMember("transformer");
  std::vector<std::pair<const rapidjson::Value*, std::string>> tnodes;
  rapidjson::Value passthrough(rapidjson::kObjectType);
  if (transformerIt == file->document->MemberEnd()) {
    tnodes.emplace_back(&passthrough, "/transformer");
  } else if (transformerIt->value.IsArray() && !transformerIt->value.Empty()) {
    rapidjson::SizeType k = 0;
    for (const auto& t : transformerIt->value.GetArray()) tnodes.emplace_back(&t, "/transformer/" + std::to_string(k++));
  } else if (transformerIt->value.IsObject()) {
    tnodes.emplace_back(&transformerIt->value, "/transformer");
  } else {
    return std::unexpected(core::configError(path, "/transformer", "a stage object or a non-empty array of them"));
  }
  for (const auto& [node, pointer] : tnodes) {
    std::string type = node == &passthrough ? std::string("passthrough") : typeOf(*node);
    const auto* factory = registry.stage(type);
    if (factory == nullptr) {
      return std::unexpected(core::configError(
          path, pointer + "/type", "a stage type, one of: " + joinNames(registry.stageTypes())));
    }
    auto stage = build(factory, *node, path, pointer, ctx);
    if (!stage) return std::unexpected(stage.error());
    channel->transformerType += (channel->transformerType.empty() ? "" : ", ") + type;
    channel->transformers.emplace_back(type, std::move(*stage));
  }

  // Destinations.
  if (destinations->Empty()) {
    return std::unexpected(core::configError(path, "/destinations", "at least one destination"));
  }
  rapidjson::SizeType i = 0;
  for (const auto& d : destinations->GetArray()) {
    std::string pointer = "/destinations/" + std::to_string(i++);
    if (!d.IsObject()) return std::unexpected(core::configError(path, pointer, "an object"));
    auto nameIt = d.FindMember("name");
    if (nameIt == d.MemberEnd() || !nameIt->value.IsString() || nameIt->value.GetStringLength() == 0) {
      return std::unexpected(core::configError(path, pointer + "/name", "a non-empty destination name"));
    }
    std::string name = nameIt->value.GetString();
    if (channel->destination(name) != nullptr) {
      return std::unexpected(core::configError(path, pointer + "/name", "a name not used by another destination of this channel"));
    }
    std::string type = typeOf(d);
    const auto* factory = registry.destination(type);
    if (factory == nullptr) {
      return std::unexpected(core::configError(
          path, pointer + "/type", "a destination type, one of: " + joinNames(registry.destinationTypes())));
    }
    std::string after;
    if (auto afterIt = d.FindMember("after"); afterIt != d.MemberEnd()) {
      if (!afterIt->value.IsString() || channel->destination(afterIt->value.GetString()) == nullptr) {
        return std::unexpected(core::configError(path, pointer + "/after", "the name of an earlier destination of this channel"));
      }
      after = afterIt->value.GetString();
    }
    auto dest = build(factory, d, path, pointer, ctx);
    if (!dest) return std::unexpected(dest.error());
    channel->destinations.push_back({name, type, std::move(*dest), after});
  }

  // Retry policy.
  if (retry != nullptr) {
    core::ConfigReader rr(*retry, path, "/retry");
    RetryPolicy& p = channel->retry;
    p.maxAttempts = static_cast<int>(rr.integer("max_attempts", p.maxAttempts, 1, 1000, "attempts before a delivery is dead"));
    p.maxAgeMs = rr.integer("max_age_seconds", p.maxAgeMs / 1000, 1, 365LL * 86400, "age after which a failing delivery is dead") * 1000;
    p.initialBackoffMs = rr.integer("initial_backoff_ms", p.initialBackoffMs, 1, 86400000, "delay after the first failure");
    p.maxBackoffMs = rr.integer("max_backoff_ms", p.maxBackoffMs, 1, 86400000, "longest delay between attempts");
    p.multiplier = rr.number("multiplier", p.multiplier, "growth factor per attempt");
    p.jitter = rr.number("jitter", p.jitter, "random spread, fraction of the delay (0 to 1)");
    if (p.multiplier < 1.0) rr.invalid("multiplier", "a number >= 1");
    if (p.jitter < 0.0 || p.jitter > 1.0) rr.invalid("jitter", "a number from 0 to 1");
    if (p.maxBackoffMs < p.initialBackoffMs) rr.invalid("max_backoff_ms", "a value >= initial_backoff_ms");
    if (auto e = rr.finish(); !e) return std::unexpected(e.error());
  }
  return channel;
}

Result<ChannelList> loadChannels(const std::string& dir, const core::ConnectorRegistry& registry,
                                 const core::ConnectorContext& context) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return fail(ErrorCode::kNotFound, dir + ": channels directory not found");
  }
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_regular_file() && entry.path().extension() == ".json") files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  ChannelList channels;
  for (const auto& f : files) {
    auto channel = loadChannel(f, registry, context);
    if (!channel) return std::unexpected(channel.error());
    if (!*channel) continue;
    for (const auto& other : channels) {
      if (other->id == (*channel)->id) {
        return std::unexpected(core::configError(f, "/id", "a channel id not already used by " + other->file));
      }
      // Listener sources serve no path (an empty one).
      if (!other->source->path().empty() && other->source->path() == (*channel)->source->path()) {
        return std::unexpected(core::configError(f, "/source/path", "a path not already served by " + other->file));
      }
    }
    channels.push_back(std::move(*channel));
  }
  return channels;
}

}  // namespace switchboard::runtime
