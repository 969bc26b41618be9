// Engine configuration (conf/switchboard.json) and channel configs (conf/channels/*.json), loaded
// and checked once at start-up. Any problem stops start-up with file, field and expectation.
// Thread-safety: immutable after loading.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/core/connector.h"
#include "engine/core/error.h"

namespace switchboard::runtime {

struct EngineConfig {
  std::string configPath;
  std::string confDir;      // directory of configPath
  std::string nodeId;       // lease owner prefix; default host:pid:random
  std::string dataDir = "var";
  std::string storeUrl;     // default sqlite:<dataDir>/switchboard.db
  int storePool = 4;
  std::string channelsDir;  // default <confDir>/channels
  // HTTP
  std::string bind = "0.0.0.0";
  int port = 8080;
  int httpThreads = 64;  // worker pool for blocking endpoints
  int httpQueue = 512;   // blocking requests waiting for a worker
  int httpIoThreads = 0;  // event loops; 0: one per core, at most 2
  int httpMaxConnections = 10000;
  int httpIdleTimeoutMs = 15000;
  int httpHeaderTimeoutMs = 30000;
  // Intake
  int groupCommitMaxBatch = 512;
  int intakeCommitters = 1;  // group commits in flight at once
  // Under load (the previous batch of messages taken less than this long ago), a commit waits
  // until the oldest of what it carries (messages, pipeline finishes, attempt records) is this
  // old or the batch is full, so that more share it. An idle engine commits at once. 0: never.
  int commitWindowMs = 10;
  int maxPendingIntake = 8192;     // messages waiting for a commit; beyond: 503
  std::int64_t maxBacklog = 100000;  // stored but unprocessed work; beyond: 503
  int retryAfterSeconds = 5;
  // Workers
  int pipelineThreads = 2;
  int deliveryThreads = 4;
  std::int64_t leaseMs = 30000;
  int claimBatch = 64;
  int deliveryClaimBatch = 64;
  int idlePollMs = 200;
  // The same for the pipeline: under load, a pass over handed-over messages waits until the oldest
  // is this old (or a claim batch is waiting), so that it runs, settles and finishes more at once.
  int pipelineWindowMs = 20;
  // Messages intake hands straight to the pipeline (stored leased, not read back); beyond this many
  // waiting, intake stores them unclaimed for the workers to claim. 0: every message is claimed.
  int handoffMax = 1024;
  // Circuit breaker
  int breakerFailureThreshold = 5;
  std::int64_t breakerOpenMs = 30000;
  // Admin
  std::string adminToken;  // empty: the admin API refuses every request
  std::string mpiMergeChannel;  // channel id receiving MPI merge/undo Bundles; empty: not sent
};

// Loads the engine config; SWITCHBOARD_PORT, SWITCHBOARD_DATA_DIR and SWITCHBOARD_ADMIN_TOKEN
// override the file.
Result<EngineConfig> loadEngineConfig(const std::string& path);

struct RetryPolicy {
  int maxAttempts = 10;
  std::int64_t maxAgeMs = 24LL * 3600 * 1000;
  std::int64_t initialBackoffMs = 1000;
  std::int64_t maxBackoffMs = 5LL * 60 * 1000;
  double multiplier = 2.0;
  double jitter = 0.2;  // +/- fraction of the delay
};

// Delay before attempt `attempt + 1` after `attempt` failed attempts; `random` in [0, 1).
std::int64_t backoffMs(const RetryPolicy& policy, int attempt, double random);

struct ChannelDestination {
  std::string name;
  std::string type;
  std::unique_ptr<core::Destination> connector;
  // Sent only once the named earlier destination of the same message is done (succeeded or
  // dead), e.g. the reply to the patient after the EHR answered. The destination then sees
  // metadata upstream_status ("succeeded" or "dead") and upstream_response.
  std::string after;
};

struct Channel {
  std::string id;
  std::string file;
  std::string description;
  std::string sourceType;
  std::unique_ptr<core::HttpSource> source;
  std::vector<std::pair<std::string, std::unique_ptr<core::Stage>>> filters;  // (type, stage)
  std::string transformerType;  // the transformer types, comma-separated (for display)
  std::vector<std::pair<std::string, std::unique_ptr<core::Stage>>> transformers;  // (type, stage), in order
  std::vector<ChannelDestination> destinations;
  RetryPolicy retry;

  const ChannelDestination* destination(const std::string& name) const;
};

using ChannelList = std::vector<std::shared_ptr<Channel>>;

// Loads one channel file.
Result<std::shared_ptr<Channel>> loadChannel(const std::string& path,
                                             const core::ConnectorRegistry& registry,
                                             const core::ConnectorContext& context);

// Loads every *.json in `dir` (sorted by name). Fails on the first bad file, on duplicate ids and
// on two channels serving the same path; disabled channels ("enabled": false) are skipped.
Result<ChannelList> loadChannels(const std::string& dir, const core::ConnectorRegistry& registry,
                                 const core::ConnectorContext& context);

}  // namespace switchboard::runtime
