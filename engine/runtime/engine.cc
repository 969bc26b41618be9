#include "engine/runtime/engine.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>
#include <stdexcept>

#include "engine/core/connector.h"
#include "engine/core/thread_name.h"

namespace switchboard::runtime {

namespace {

core::HttpResponse problem(int status, ErrorCode code, std::string message) {
  core::HttpResponse r = core::HttpResponse::json(status, core::operationOutcomeJson(Error(code, std::move(message))));
  r.contentType = "application/fhir+json";
  return r;
}

void logLine(const std::string& text) {
  // Operational log: ids, counts and error texts only; never bodies or secrets.
  std::fprintf(stderr, "switchboard: %s\n", text.c_str());
}

constexpr std::size_t kAdminBodyLimit = 1 << 20;

}  // namespace

Engine::Engine(EngineConfig config, std::unique_ptr<store::Store> store, ChannelList channels,
               std::shared_ptr<core::Clock> clock, std::shared_ptr<core::Random> random)
    : config_(std::move(config)),
      store_(std::move(store)),
      channels_(std::make_shared<const ChannelList>(std::move(channels))),
      clock_(std::move(clock)),
      random_(std::move(random)),
      breakers_(config_.breakerFailureThreshold, config_.breakerOpenMs) {
  batcher_ = std::make_unique<IntakeBatcher>(
      *store_, config_.groupCommitMaxBatch, config_.maxPendingIntake,
      [this](int stored) {
        backlog_ += stored;
        wakePipeline();
      },
      config_.intakeCommitters);
  batcher_->setCommitWindow(std::chrono::milliseconds(config_.commitWindowMs));
  // All answers of one commit reach the HTTP I/O threads with one wake-up per thread.
  batcher_->setCompletionScope([](const std::function<void()>& completions) {
    HttpCompletionBatch batch;
    completions();
  });
  handoffOwner_ = config_.nodeId + "/intake";
  if (config_.handoffMax > 0) {
    batcher_->setHandoff({[this](int count) { return leaseForIntake(count); },
                          [this](std::vector<store::NewMessage>& rows,
                                 const std::vector<store::IngestOutcome>* outcomes,
                                 const std::optional<store::IntakeLease>& lease) {
                            handOver(rows, outcomes, lease);
                          }});
  }
  refreshBacklog();
}

Engine::~Engine() { stop(); }

std::shared_ptr<const ChannelList> Engine::channels() const { return std::atomic_load(&channels_); }

void Engine::replaceChannels(ChannelList channels) {
  auto next = std::make_shared<const ChannelList>(std::move(channels));
  std::lock_guard<std::mutex> lock(listenersMutex_);
  auto previous = std::atomic_exchange(&channels_, std::shared_ptr<const ChannelList>(next));
  if (!listening_) return;
  if (auto r = syncListeners(*next, previous.get()); !r) logLine(r.error().message);
}

namespace {
core::ListenerSource* listenerOf(const Channel& channel) {
  return dynamic_cast<core::ListenerSource*>(channel.source.get());
}
}  // namespace

Result<void> Engine::syncListeners(const ChannelList& list, const ChannelList* dropped) {
  auto in = [](const ChannelList* l, const core::ListenerSource* s) {
    return l != nullptr &&
           std::any_of(l->begin(), l->end(), [s](const auto& c) { return listenerOf(*c) == s; });
  };
  Result<void> result;
  for (const auto& c : list) {
    core::ListenerSource* source = listenerOf(*c);
    if (source == nullptr || in(dropped, source)) continue;
    auto started = source->start(listenerGate(c->id));
    if (!started && result) {
      result =
          fail(started.error().code,
               "channel " + c->id + ": its listener did not start: " + started.error().message);
    }
  }
  if (dropped != nullptr) {
    for (const auto& c : *dropped) {
      core::ListenerSource* source = listenerOf(*c);
      if (source != nullptr && !in(&list, source)) source->stop();
    }
  }
  return result;
}

core::IntakeGate Engine::listenerGate(const std::string& channelId) {
  return [this, channelId](const core::HttpRequest& request, std::chrono::milliseconds maxWait) {
    // The snapshot keeps the channel alive for the whole call even if a reload replaces it.
    auto snapshot = channels();
    const Channel* channel = channelById(*snapshot, channelId);
    if (channel == nullptr || listenerOf(*channel) == nullptr) {
      return core::IntakeReply{
          problem(404, ErrorCode::kNotFound, "no listener channel " + channelId), false};
    }
    return intakeAndWait(*channel, request, maxWait);
  };
}

Result<std::int64_t> Engine::ingestInternal(const std::string& channelId, core::InboundMessage message) {
  auto snapshot = channels();
  if (channelById(*snapshot, channelId) == nullptr) {
    return fail(ErrorCode::kNotFound, "no channel " + channelId);
  }
  store::NewMessage row;
  row.channelId = channelId;
  row.idempotencyKey = std::move(message.idempotencyKey);
  row.receivedAtMs = clock_->nowMs();
  row.contentType = std::move(message.contentType);
  row.body = std::move(message.body);
  row.metadata = std::move(message.metadata);
  core::setMetadata(row.metadata, "received_at_ms", std::to_string(row.receivedAtMs));
  auto outcomes = batcher_->submit({std::move(row)});
  if (!outcomes) return std::unexpected(outcomes.error());
  metrics_.countIntake(channelId, outcomes->at(0).duplicate ? "duplicate" : "accepted");
  return outcomes->at(0).messageId;
}

const Channel* Engine::channelForPath(const ChannelList& list, const std::string& path) {
  for (const auto& c : list) {
    // A listener source's path is empty: no HTTP request reaches it.
    if (!c->source->path().empty() && c->source->path() == path) return c.get();
  }
  return nullptr;
}

const Channel* Engine::channelById(const ChannelList& list, const std::string& id) {
  for (const auto& c : list) {
    if (c->id == id) return c.get();
  }
  return nullptr;
}

void Engine::start() {
  running_ = true;
  for (int i = 0; i < config_.pipelineThreads; ++i) {
    owners_.push_back(config_.nodeId + "/p" + std::to_string(i));
    threads_.emplace_back([this, owner = owners_.back()] {
      core::nameThisThread("sb-pipeline");
      pipelineLoop(owner);
    });
  }
  for (int i = 0; i < config_.deliveryThreads; ++i) {
    owners_.push_back(config_.nodeId + "/d" + std::to_string(i));
    deliveryWorkers_.push_back(std::make_unique<DeliveryWorker>());
    deliveryWorkers_.back()->owner = owners_.back();
  }
  for (auto& w : deliveryWorkers_) {
    threads_.emplace_back([this, worker = w.get()] {
      core::nameThisThread("sb-deliver");
      deliveryLoop(*worker);
    });
  }
  HttpServerOptions http;
  http.bind = config_.bind;
  http.port = config_.port;
  http.ioThreads = config_.httpIoThreads;
  http.workerThreads = config_.httpThreads;
  http.workerQueue = config_.httpQueue;
  http.maxConnections = config_.httpMaxConnections;
  http.idleTimeoutMs = config_.httpIdleTimeoutMs;
  http.headerTimeoutMs = config_.httpHeaderTimeoutMs;
  server_ = std::make_unique<HttpServer>(*this, http);
  server_->start();
  accepting_ = true;
  std::lock_guard<std::mutex> lock(listenersMutex_);
  listening_ = true;
  if (auto r = syncListeners(*channels(), nullptr); !r) throw std::runtime_error(r.error().message);
}

void Engine::stop() {
  bool wasRunning = running_.exchange(false);
  accepting_ = false;
  {
    // Before the commits stop: a message a listener source holds is committed and answered.
    std::lock_guard<std::mutex> lock(listenersMutex_);
    if (listening_) syncListeners({}, channels().get());
    listening_ = false;
  }
  if (server_) server_->stop();
  if (batcher_) batcher_->stop();
  {
    std::lock_guard<std::mutex> lock(wakeMutex_);
    ++pipelineSignal_;
    ++deliverySignal_;
  }
  pipelineWake_.notify_all();
  {
    std::lock_guard<std::mutex> lock(wakeMutex_);
    for (auto& w : deliveryWorkers_) w->wake.notify_all();
  }
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
  deliveryWorkers_.clear();  // deliveries left in an inbox: their leases are released below
  if (wasRunning) {
    for (const auto& owner : owners_) {
      if (auto r = store_->releaseLeases(owner); !r) logLine("releasing leases failed: " + r.error().message);
    }
  }
  owners_.clear();
  {
    std::lock_guard<std::mutex> lock(handoffMutex_);
    handoff_.clear();
  }
  // Messages handed over and not finished go back to the store's claims now, not at lease expiry.
  if (handedOver_.exchange(false)) {
    if (auto r = store_->releaseLeases(handoffOwner_); !r) logLine("releasing leases failed: " + r.error().message);
  }
}

std::optional<std::size_t> Engine::bodyLimit(const std::string& path) const {
  if (path == "/healthz" || path == "/metrics") return 0;
  if (path.starts_with("/api/") || path == "/api" || path.starts_with("/ui") || path.starts_with("/fhir/")) {
    return admin_ ? std::optional<std::size_t>(kAdminBodyLimit) : std::nullopt;
  }
  auto snapshot = channels();
  if (const Channel* c = channelForPath(*snapshot, path)) return c->source->maxBodyBytes();
  return std::nullopt;
}

void Engine::rejectedBeforeBody(const std::string& path, int status) {
  auto snapshot = channels();
  const Channel* c = channelForPath(*snapshot, path);
  std::string channel = c != nullptr ? c->id : std::string("-");
  metrics_.countIntake(channel, status == 413 ? "too_large" : "error");
  store_->audit({clock_->nowMs(), "source:" + channel, status == 413 ? "body-too-large" : "body-unreadable",
                 path, "HTTP " + std::to_string(status)});
}

core::HttpResponse Engine::handle(const core::HttpRequest& request) {
  if (request.path == "/healthz") {
    auto backlog = store_->backlog();
    if (!backlog) return problem(503, ErrorCode::kTransient, "store unavailable");
    std::string body = "{\"status\":\"ok\",\"store\":\"" + store_->backend() + "\",\"channels\":" +
                       std::to_string(channels()->size()) + ",\"backlog\":" + std::to_string(*backlog) + "}";
    return core::HttpResponse::json(200, body);
  }
  if (request.path == "/metrics") {
    core::HttpResponse r = core::HttpResponse::text(200, metricsText(), "text/plain; version=0.0.4");
    return r;
  }
  // The snapshot keeps the channel alive for the whole request even if a reload replaces it.
  auto snapshot = channels();
  if (const Channel* c = channelForPath(*snapshot, request.path)) return intake(*c, request);
  if (admin_) return admin_(request);
  return problem(404, ErrorCode::kNotFound, "no channel or endpoint serves " + request.path);
}

std::string Engine::metricsText() {
  auto stats = store_->stats();
  std::int64_t handedOver = 0;
  {
    std::lock_guard<std::mutex> lock(handoffMutex_);
    handedOver = static_cast<std::int64_t>(handoff_.size());
  }
  return metrics_.render(stats ? *stats : store::StoreStats{}, breakers_.states(clock_->nowMs()),
                         batcher_ ? batcher_->pending() : 0, handedOver);
}

core::HttpResponse Engine::throttled(const std::string& why) const {
  core::HttpResponse r = problem(503, ErrorCode::kThrottled, why);
  r.headers.push_back({"Retry-After", std::to_string(config_.retryAfterSeconds)});
  return r;
}

core::HttpResponse Engine::intake(const Channel& channel, const core::HttpRequest& request) {
  return intakeAndWait(channel, request, std::nullopt).reply;
}

core::IntakeReply Engine::intakeAndWait(const Channel& channel, const core::HttpRequest& request,
                                        std::optional<std::chrono::milliseconds> maxWait) {
  IntakePlan plan = planIntake(channel, request);
  if (plan.audit) {
    if (auto r = store_->audit(*plan.audit); !r) logLine("audit write failed: " + r.error().message);
  }
  if (plan.answer) return {std::move(*plan.answer), false};
  auto outcomes = batcher_->submit(std::move(plan.rows), maxWait);
  const bool committed = outcomes.has_value();
  return {finishIntake(channel.id, plan, std::move(outcomes)), committed};
}

bool Engine::handleAsync(core::HttpRequest& request, HttpCompletion& done) {
  auto snapshot = channels();
  const Channel* channel = channelForPath(*snapshot, request.path);
  if (channel == nullptr) return false;
  auto plan = std::make_shared<IntakePlan>(planIntake(*channel, request));
  if (plan->audit) {
    // A store write: off the I/O thread. Without a free worker the refusal is answered unaudited.
    auto audited = [this, plan, done] {
      if (auto r = store_->audit(*plan->audit); !r) logLine("audit write failed: " + r.error().message);
      done(std::move(*plan->answer));
    };
    if (!server_ || !server_->runBlocking(audited)) {
      logLine("audit of a refused request on channel " + channel->id + " skipped: no free worker");
      done(std::move(*plan->answer));
    }
    return true;
  }
  if (plan->answer) {
    done(std::move(*plan->answer));
    return true;
  }
  std::vector<store::NewMessage> rows = std::move(plan->rows);
  batcher_->submitAsync(std::move(rows), [this, plan, done, channelId = channel->id](IntakeBatcher::Outcomes outcomes) {
    done(finishIntake(channelId, *plan, std::move(outcomes)));
  });
  return true;
}

Engine::IntakePlan Engine::planIntake(const Channel& channel, const core::HttpRequest& request) {
  IntakePlan plan;
  if (!accepting_) {
    plan.answer = throttled("engine is shutting down");
    return plan;
  }
  if (backlog_.load() >= config_.maxBacklog) {
    metrics_.countIntake(channel.id, "throttled");
    plan.answer = throttled("backlog of " + std::to_string(backlog_.load()) + " exceeds the configured limit");
    return plan;
  }
  core::SourceVerdict verdict;
  try {
    verdict = channel.source->handle(request);
  } catch (const std::exception& e) {
    logLine("source of channel " + channel.id + " threw: " + e.what());
    plan.answer = problem(500, ErrorCode::kException, "internal error in source connector");
    return plan;
  }
  using Kind = core::SourceVerdict::Kind;
  const core::Millis now = clock_->nowMs();
  switch (verdict.kind) {
    case Kind::kRespond:
      plan.answer = std::move(verdict.reply);
      return plan;
    case Kind::kRefuse:
      metrics_.countIntake(channel.id, "refused");
      plan.audit = store::AuditRecord{now, "source:" + channel.id, "authentication-refused", request.path,
                                      verdict.auditReason};
      plan.answer = std::move(verdict.reply);
      return plan;
    case Kind::kReject:
    case Kind::kAccept:
      break;
  }
  plan.rows.reserve(verdict.messages.size());
  for (auto& m : verdict.messages) {
    store::NewMessage row;
    row.channelId = channel.id;
    row.idempotencyKey = std::move(m.idempotencyKey);
    row.receivedAtMs = now;
    row.contentType = std::move(m.contentType);
    row.body = std::move(m.body);
    row.metadata = std::move(m.metadata);
    core::setMetadata(row.metadata, "received_at_ms", std::to_string(now));
    if (verdict.kind == Kind::kReject) {
      row.status = "rejected";
      row.error = verdict.error.message;
    }
    plan.rows.push_back(std::move(row));
  }
  if (plan.rows.empty()) {
    plan.answer = std::move(verdict.reply);  // e.g. a webhook carrying nothing to keep
    return plan;
  }
  plan.rejected = verdict.kind == Kind::kReject;
  plan.reply = std::move(verdict.reply);
  return plan;
}

core::HttpResponse Engine::finishIntake(const std::string& channelId, IntakePlan& plan,
                                        IntakeBatcher::Outcomes outcomes) {
  if (!outcomes) {
    if (outcomes.error().code == ErrorCode::kThrottled) {
      metrics_.countIntake(channelId, "throttled");
      return throttled("intake queue is full");
    }
    metrics_.countIntake(channelId, "error");
    logLine("intake commit failed on channel " + channelId + ": " + outcomes.error().message);
    return throttled("message store unavailable; retry later");
  }
  std::string ids;
  std::int64_t accepted = 0, duplicates = 0;
  for (const auto& o : *outcomes) {
    if (!ids.empty()) ids += ',';
    ids += std::to_string(o.messageId);
    (o.duplicate ? duplicates : accepted) += 1;
  }
  if (plan.rejected) {
    metrics_.countIntake(channelId, "rejected");
  } else {
    if (accepted) metrics_.countIntake(channelId, "accepted", accepted);
    if (duplicates) metrics_.countIntake(channelId, "duplicate", duplicates);
  }
  core::HttpResponse reply = std::move(plan.reply);
  reply.headers.push_back({"X-Switchboard-Message-Ids", ids});
  return reply;
}

// A provider's status callback (kind=status) about a message we sent: record it on the message
// whose delivery sent it ("outbound-status" event), and note the link on the callback itself.
void Engine::linkStatusCallback(core::PipelineMessage& pm) {
  const std::string* kind = core::findMetadata(pm.metadata, "kind");
  const std::string* outbound = core::findMetadata(pm.metadata, "outbound_id");
  if (kind == nullptr || *kind != "status" || outbound == nullptr || outbound->empty()) return;
  const std::string* status = core::findMetadata(pm.metadata, "status");
  const std::string* error = core::findMetadata(pm.metadata, "error");
  const std::string* provider = core::findMetadata(pm.metadata, "provider");
  std::string detail = (provider ? *provider + " " : std::string()) + (status ? *status : std::string("status")) +
                       " for " + *outbound + (error && !error->empty() ? " (" + *error + ")" : std::string()) +
                       (pm.message ? "; callback message " + std::to_string(pm.message->id) : std::string());
  auto linked = store_->linkExternal(*outbound, clock_->nowMs(), "outbound-status", detail);
  if (!linked) {
    pm.events.emplace_back("status-unlinked", "store: " + linked.error().message);
  } else if (*linked) {
    pm.events.emplace_back("status-linked", "message " + std::to_string((*linked)->messageId) + " delivery " +
                                                std::to_string((*linked)->deliveryId) + ": " +
                                                (status ? *status : std::string()));
  } else {
    pm.events.emplace_back("status-unlinked", "no sent message has id " + *outbound);
  }
}

store::ProcessOutcome Engine::runPipeline(const Channel& channel, const core::StoredMessage& message) {
  store::ProcessOutcome outcome;
  core::PipelineMessage pm;
  pm.message = &message;
  pm.payload = message.body;
  pm.contentType = message.contentType;
  pm.metadata = message.metadata;
  auto failWith = [&](const Error& e, const std::string& stage) {
    outcome.status = "error";
    outcome.error = e.message;
    outcome.events = std::move(pm.events);
    outcome.events.emplace_back("failed", stage + ": " + e.message);
    outcome.deliveries.clear();
    return outcome;
  };
  linkStatusCallback(pm);
  try {
    for (const auto& [type, filter] : channel.filters) {
      core::StageResult r = filter->process(pm);
      if (r.kind == core::StageResult::Kind::kFail) return failWith(r.error, "filter " + type);
      if (r.kind == core::StageResult::Kind::kDrop) {
        outcome.status = "filtered";
        outcome.events = std::move(pm.events);
        outcome.events.emplace_back("filtered", type + ": " + r.note);
        return outcome;
      }
    }
    for (const auto& [type, stage] : channel.transformers) {
      core::StageResult t = stage->process(pm);
      if (t.kind == core::StageResult::Kind::kFail) return failWith(t.error, "transformer " + type);
      if (t.kind == core::StageResult::Kind::kDrop) {
        outcome.status = "filtered";
        outcome.events = std::move(pm.events);
        outcome.events.emplace_back("filtered", type + ": " + t.note);
        return outcome;
      }
    }
  } catch (const std::exception& e) {
    return failWith(Error(ErrorCode::kException, std::string("stage threw: ") + e.what()), "pipeline");
  }
  outcome.status = "processed";
  outcome.events = std::move(pm.events);
  outcome.events.emplace_back("transformed", channel.transformerType);
  const core::Millis now = clock_->nowMs();
  for (const auto& d : channel.destinations) {
    outcome.deliveries.push_back({d.name, pm.payload, pm.contentType, now, d.after});
  }
  return outcome;
}

int Engine::runPipelineOnce(const std::string& owner) {
  int n = processHandedOver(nullptr);
  return n > 0 ? n : processClaimed(owner);
}

std::optional<store::IntakeLease> Engine::leaseForIntake(int count) {
  std::lock_guard<std::mutex> lock(handoffMutex_);
  if (static_cast<int>(handoff_.size()) + handoffReserved_ + count > config_.handoffMax) return std::nullopt;
  handoffReserved_ += count;
  handedOver_ = true;
  return store::IntakeLease{handoffOwner_, clock_->nowMs() + config_.leaseMs};
}

void Engine::handOver(std::vector<store::NewMessage>& rows, const std::vector<store::IngestOutcome>* outcomes,
                      const std::optional<store::IntakeLease>& lease) {
  if (!lease) {
    if (outcomes != nullptr) storeWork_ = true;  // stored unclaimed: the workers claim them
    return;
  }
  std::vector<HandedOver> taken;
  if (outcomes != nullptr) {
    taken.reserve(rows.size());
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const store::IngestOutcome& o = (*outcomes)[i];
      if (o.duplicate || rows[i].status != "received") continue;
      taken.push_back({store::storedForm(std::move(rows[i]), o.messageId), lease->untilMs,
                       std::chrono::steady_clock::now()});
    }
  }
  std::lock_guard<std::mutex> lock(handoffMutex_);
  handoffReserved_ -= static_cast<int>(rows.size());
  for (auto& h : taken) handoff_.push_back(std::move(h));
  if (static_cast<int>(handoff_.size()) >= config_.claimBatch)
    handoffFull_ = true;  // ends a held pass
}

int Engine::processHandedOver(std::optional<std::chrono::steady_clock::time_point>* holdUntil) {
  std::vector<core::StoredMessage> batch;
  bool more = false;
  {
    std::lock_guard<std::mutex> lock(handoffMutex_);
    if (handoff_.empty()) return 0;
    // The pipeline window (workers.pipeline_window_ms): while messages keep coming, a pass waits
    // for the oldest to be a window old so that it runs, settles and finishes more at once.
    const auto steadyNow = std::chrono::steady_clock::now();
    const std::chrono::milliseconds window(config_.pipelineWindowMs);
    if (holdUntil != nullptr && window.count() > 0 &&
        static_cast<int>(handoff_.size()) < config_.claimBatch &&
        steadyNow - lastPipelinePass_ < window && steadyNow < handoff_.front().at + window) {
      *holdUntil = handoff_.front().at + window;
      return 0;
    }
    lastPipelinePass_ = steadyNow;
    handoffFull_ = false;
    const core::Millis now = clock_->nowMs();
    while (!handoff_.empty() && static_cast<int>(batch.size()) < config_.claimBatch) {
      HandedOver& h = handoff_.front();
      // Too little of the lease left to finish under it: left to a claim once the lease expires.
      if (h.leaseUntilMs - now >= config_.leaseMs / 2) {
        batch.push_back(std::move(h.message));
      } else {
        storeWork_ = true;
      }
      handoff_.pop_front();
    }
    more = !handoff_.empty();
  }
  if (more) wakePipeline();
  return processMessages(handoffOwner_, batch);
}

int Engine::processClaimed(const std::string& owner) {
  auto claimed = store_->claimMessages(owner, config_.claimBatch, clock_->nowMs(), config_.leaseMs);
  if (!claimed) {
    logLine("claiming messages failed: " + claimed.error().message);
    return 0;
  }
  if (static_cast<int>(claimed->size()) == config_.claimBatch) {
    storeWork_ = true;
    wakePipeline();  // more may wait
  }
  return processMessages(owner, *claimed);
}

int Engine::processMessages(const std::string& owner, const std::vector<core::StoredMessage>& messages) {
  if (messages.empty()) return 0;
  auto channels = this->channels();
  std::vector<store::Store::FinishItem> items;
  items.reserve(messages.size());
  std::vector<const Channel*> ran;  // channels whose stages ran, in first-use order
  std::vector<const Channel*> channelOf;
  channelOf.reserve(messages.size());
  for (const auto& m : messages) {
    const Channel* channel = nullptr;
    for (const auto& c : *channels) {
      if (c->id == m.channelId) channel = c.get();
    }
    store::ProcessOutcome outcome;
    if (channel == nullptr) {
      outcome.status = "error";
      outcome.error = "channel " + m.channelId + " is not configured";
      outcome.events.emplace_back("failed", outcome.error);
    } else {
      outcome = runPipeline(*channel, m);
      if (std::find(ran.begin(), ran.end(), channel) == ran.end()) ran.push_back(channel);
    }
    items.push_back({m.id, std::move(outcome)});
    channelOf.push_back(channel);
  }
  // The stages' own deferred side effects on disk before the outcomes commit (Stage::settle).
  // A channel whose stage cannot settle keeps its messages unfinished: claimed again after
  // their lease, they run through the pipeline again.
  auto settleAll = [](const auto& stages) -> Result<void> {
    for (const auto& [type, stage] : stages) {
      if (auto r = stage->settle(); !r) return fail(r.error().code, type + ": " + r.error().message);
    }
    return {};
  };
  std::vector<const Channel*> unsettled;
  for (const Channel* c : ran) {
    auto settled = settleAll(c->filters);
    if (settled) settled = settleAll(c->transformers);
    if (!settled) {
      logLine("channel " + c->id + ": settling the pipeline's stages failed, " +
              "its messages are left to be processed again: " + settled.error().message);
      unsettled.push_back(c);
    }
  }
  if (!unsettled.empty()) {
    std::vector<store::Store::FinishItem> kept;
    std::vector<core::StoredMessage> keptMessages;
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (std::find(unsettled.begin(), unsettled.end(), channelOf[i]) != unsettled.end()) continue;
      kept.push_back(std::move(items[i]));
      keptMessages.push_back(messages[i]);
    }
    if (kept.empty()) return 0;
    items = std::move(kept);
    return finishProcessed(owner, keptMessages, items);
  }
  return finishProcessed(owner, messages, items);
}

int Engine::finishProcessed(const std::string& owner, const std::vector<core::StoredMessage>& messages,
                            std::vector<store::Store::FinishItem>& items) {
  int deliveries = 0;
  const core::Millis now = clock_->nowMs();
  // Deliveries due at once are stored leased to an idle delivery worker and handed to it in
  // memory (no claim, no read back), as intake hands messages to the pipeline
  // (workers.handoff_max > 0), up to a claim batch per worker. When every worker is busy they
  // are stored unleased and claimed, so nothing waits behind a busy worker's pass.
  std::vector<std::vector<store::Store::LeasedDelivery>> leased(items.size());
  std::vector<std::vector<store::Store::LeasedDelivery>> claimable(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) items[i].claimableDeliveries = &claimable[i];
  std::vector<DeliveryWorker*> workerOf(items.size(), nullptr);
  std::vector<DeliveryWorker*> taken;
  if (config_.handoffMax > 0) {
    std::lock_guard<std::mutex> lock(wakeMutex_);
    DeliveryWorker* w = nullptr;
    std::size_t load = 0;
    for (std::size_t i = 0; i < items.size(); ++i) {
      const std::size_t n = items[i].outcome.deliveries.size();
      if (n == 0) continue;
      if (w == nullptr || load + n > static_cast<std::size_t>(config_.deliveryClaimBatch)) {
        w = takeIdleDeliveryWorker();
        if (w == nullptr) break;
        taken.push_back(w);
        load = w->inbox.size();
      }
      items[i].deliveryLease = store::IntakeLease{w->owner, now + config_.leaseMs};
      items[i].leasedDeliveries = &leased[i];
      workerOf[i] = w;
      load += n;
    }
  }
  // One transaction for the whole batch, shared with the next intake commit (IntakeBatcher).
  auto finished = batcher_->finish(owner, items, now);
  if (!finished) {
    logLine("finishing " + std::to_string(items.size()) + " messages failed: " + finished.error().message);
    std::lock_guard<std::mutex> lock(wakeMutex_);
    for (DeliveryWorker* w : taken) w->wake.notify_one();  // taken as idle: back to their wait
    return 0;
  }
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (!(*finished)[i]) {
      logLine("finishing message " + std::to_string(items[i].messageId) + " failed: " + (*finished)[i].error().message);
      continue;
    }
    const auto& outcome = items[i].outcome;
    for (const auto& c : claimable[i])
      keepFresh(store::storedForm(outcome.deliveries[c.index], c.id, messages[i], now));
    metrics_.countPipeline(messages[i].channelId, outcome.status);
    backlog_ += static_cast<std::int64_t>(outcome.deliveries.size()) - 1;
    deliveries += static_cast<int>(outcome.deliveries.size());
  }
  int handed = 0;
  if (!taken.empty()) {
    std::lock_guard<std::mutex> lock(wakeMutex_);
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (leased[i].empty() || !(*finished)[i]) continue;
      for (const auto& l : leased[i]) {
        store::DeliveryRecord r = store::storedForm(items[i].outcome.deliveries[l.index], l.id, messages[i], now);
        r.leaseUntilMs = items[i].deliveryLease->untilMs;
        workerOf[i]->inbox.push_back(std::move(r));
        ++handed;
      }
    }
    for (DeliveryWorker* w : taken) w->wake.notify_one();  // taken, so woken even with nothing handed
    metrics_.countDeliveriesHandedOver(handed);
  }
  if (deliveries > handed) wakeDeliveries();
  return static_cast<int>(messages.size());
}

void Engine::keepFresh(store::DeliveryRecord record) {
  std::lock_guard<std::mutex> lock(freshMutex_);
  freshOrder_.push_back(record.id);
  fresh_.insert_or_assign(record.id, std::move(record));
  while (freshOrder_.size() > kFreshMax) {
    fresh_.erase(freshOrder_.front());
    freshOrder_.pop_front();
  }
}

std::optional<store::DeliveryRecord> Engine::takeFresh(std::int64_t id) {
  std::lock_guard<std::mutex> lock(freshMutex_);
  auto it = fresh_.find(id);
  if (it == fresh_.end()) return std::nullopt;
  std::optional<store::DeliveryRecord> out(std::move(it->second));
  fresh_.erase(it);
  return out;
}

int Engine::runDeliveriesOnce(const std::string& owner) {
  bool more = false;
  return runDeliveries(owner, more);
}

int Engine::runDeliveriesOnce(const std::string& owner, std::vector<store::DeliveryRecord>& ahead) {
  bool more = false;
  return runDeliveries(owner, more, &ahead);
}

int Engine::runDeliveries(const std::string& owner, bool& more, std::vector<store::DeliveryRecord>* ahead) {
  const core::Millis now = clock_->nowMs();
  auto channels = this->channels();
  std::vector<std::string> blocked = breakers_.blocked(now);
  std::vector<std::string> paused;
  if (!blocked.empty()) {
    for (const auto& c : *channels) {
      for (const auto& d : c->destinations) {
        std::string key = d.connector->endpointKey();
        for (const auto& b : blocked) {
          if (b == key) paused.push_back(c->id + "/" + d.name);
        }
      }
    }
  }
  Result<std::vector<store::DeliveryRecord>> claimed;
  if (ahead != nullptr && !ahead->empty()) {  // claimed with the previous pass's attempts
    claimed = std::move(*ahead);
    ahead->clear();
  } else {
    claimed = store_->claimDeliveries(owner, config_.deliveryClaimBatch, now, config_.leaseMs, paused);
  }
  if (!claimed) {
    logLine("claiming deliveries failed: " + claimed.error().message);
    return 0;
  }
  bool skipped = false;
  int handled = 0;
  std::vector<store::Store::AttemptItem> attempts;
  attempts.reserve(claimed->size());
  std::vector<bool> hasDependents;  // per attempt: a sibling destination is sent after this one
  bool allRepeatable = true;  // whether every attempt below may be recorded without a flush
  if (static_cast<int>(claimed->size()) == config_.deliveryClaimBatch) {
    more = true;
    wakeDeliveries();  // more may wait
  }
  // The pass's deliveries grouped per destination, so that a destination may overlap its sends
  // (Destination::sendMany); attempts are recorded in the claimed order.
  struct Group {
    const Channel* channel;
    const ChannelDestination* dest;
    std::vector<std::size_t> members;  // indices into *claimed
  };
  std::vector<Group> groups;
  std::vector<std::optional<store::AttemptRecord>> recordedAt(claimed->size());
  std::vector<bool> dependentsAt(claimed->size(), false);
  for (std::size_t k = 0; k < claimed->size(); ++k) {
    const auto& d = (*claimed)[k];
    const Channel* channel = nullptr;
    for (const auto& c : *channels) {
      if (c->id == d.channelId) channel = c.get();
    }
    const ChannelDestination* dest =
        channel != nullptr ? channel->destination(d.destination) : nullptr;
    if (dest == nullptr) {
      store::AttemptRecord a;
      a.startedAtMs = clock_->nowMs();
      a.outcome = "fail";
      a.response = "destination " + d.channelId + "/" + d.destination + " is not configured";
      a.newStatus = "dead";
      a.deadReason = "permanent";
      recordedAt[k] = std::move(a);
      continue;
    }
    auto g = std::find_if(groups.begin(), groups.end(),
                          [&](const Group& x) { return x.dest->connector == dest->connector; });
    if (g == groups.end()) g = groups.insert(groups.end(), Group{channel, dest, {}});
    g->members.push_back(k);
  }
  for (const Group& group : groups) {
    const std::string endpoint = group.dest->connector->endpointKey();
    const RetryPolicy& policy = group.channel->retry;
    bool dependents = false;
    for (const auto& other : group.channel->destinations)
      dependents = dependents || other.after == group.dest->name;
    // In handfuls of as many as the destination overlaps, the lease and the circuit breaker checked
    // before each handful: one that sends one at a time meets the breaker between any two sends.
    const std::size_t atOnce = std::max<std::size_t>(group.dest->connector->sendsAtOnce(), 1);
    for (std::size_t next = 0; next < group.members.size();) {
      const core::Millis startedAtMs = clock_->nowMs();
      std::vector<std::size_t> sending;  // indices into *claimed
      std::vector<core::Metadata> metadata;
      metadata.reserve(atOnce);  // the requests point into it
      std::vector<core::DeliveryRequest> requests;
      requests.reserve(atOnce);
      while (next < group.members.size() && sending.size() < atOnce) {
        const std::size_t k = group.members[next++];
        const auto& d = (*claimed)[k];
        // Its lease ran out while it waited in this worker's batch: someone may have claimed it.
        if (d.leaseUntilMs != 0 && startedAtMs >= d.leaseUntilMs) continue;
        if (!breakers_.allow(endpoint, startedAtMs)) {
          skipped = true;
          continue;
        }
        core::DeliveryRequest& req = requests.emplace_back();
        req.deliveryId = d.id;
        req.messageId = d.messageId;
        req.channelId = d.channelId;
        req.destination = d.destination;
        req.attempt = d.attempts + 1;
        req.payload = d.payload;
        req.contentType = d.contentType;
        core::Metadata& m = metadata.emplace_back(d.metadata);
        if (!d.after.empty()) {
          core::setMetadata(m, "upstream_status", d.upstreamStatus);
          core::setMetadata(m, "upstream_response", d.upstreamResponse);
        }
        req.metadata = &m;
        sending.push_back(k);
      }
      if (sending.empty()) continue;
      std::vector<const core::DeliveryRequest*> pointers;
      pointers.reserve(requests.size());
      for (const auto& r : requests) pointers.push_back(&r);
      std::vector<core::SentDelivery> sent(requests.size());
      try {
        group.dest->connector->sendMany(pointers, sent);
      } catch (const std::exception& e) {
        for (auto& x : sent)
          x.result = core::DeliveryResult::retry(std::string("destination threw: ") + e.what());
      }
      const core::Millis end = clock_->nowMs();
      for (std::size_t i = 0; i < sending.size(); ++i) {
        const auto& d = (*claimed)[sending[i]];
        const core::DeliveryResult& result = sent[i].result;
        const double seconds = std::chrono::duration<double>(sent[i].elapsed).count();
        breakers_.record(endpoint, result.status == core::DeliveryStatus::kRetry, end);
        store::AttemptRecord a;
        a.startedAtMs = startedAtMs;
        a.durationMs = static_cast<core::Millis>(seconds * 1000.0);
        a.statusCode = result.responseCode;
        a.response = result.response.substr(0, 2048);
        if (result.status == core::DeliveryStatus::kOk)
          a.externalId = result.externalId.substr(0, 256);
        switch (result.status) {
          case core::DeliveryStatus::kOk:
            a.outcome = "ok";
            a.newStatus = "succeeded";
            break;
          case core::DeliveryStatus::kFail:
            a.outcome = "fail";
            a.newStatus = "dead";
            a.deadReason = "permanent";
            break;
          case core::DeliveryStatus::kRetry: {
            a.outcome = "retry";
            const int attempts = d.attempts + 1;
            core::Millis delay = result.retryAfter
                                     ? result.retryAfter->count()
                                     : backoffMs(policy, attempts, random_->uniform());
            if (attempts >= policy.maxAttempts) {
              a.newStatus = "dead";
              a.deadReason = "max_attempts";
            } else if (end + delay - d.createdAtMs > policy.maxAgeMs) {
              a.newStatus = "dead";
              a.deadReason = "max_age";
            } else {
              a.newStatus = "pending";
              a.nextAttemptAtMs = end + delay;
            }
            break;
          }
        }
        metrics_.countAttempt(d.channelId, d.destination, a.outcome, seconds);
        allRepeatable = allRepeatable && result.repeatable;
        recordedAt[sending[i]] = std::move(a);
        dependentsAt[sending[i]] = dependents;
      }
    }
  }
  for (std::size_t k = 0; k < claimed->size(); ++k) {
    if (!recordedAt[k]) continue;
    // The delivery as sent: its payload and metadata for the deliveries after it (handed over).
    attempts.push_back({(*claimed)[k].id, std::move(*recordedAt[k]), &(*claimed)[k]});
    hasDependents.push_back(dependentsAt[k]);
  }
  if (!attempts.empty()) {
    // One transaction records the whole batch, flushed unless every send in it may be repeated.
    // In the delivery loop it also claims the next batch (none while some were skipped: their
    // leases are released below, with every other lease of this owner).
    // Where the store's writers take turns anyway (SQLite), the committer carries it in its next
    // transaction, with the intake and the pipeline's finishes (IntakeBatcher::record): no
    // transaction or flush of its own.
    Result<std::vector<Result<void>>> recorded;
    const bool claimNext = ahead != nullptr && !skipped;
    const store::Store::ClaimRequest claim{config_.deliveryClaimBatch, clock_->nowMs(),
                                           config_.leaseMs, std::move(paused),
                                           [this](std::int64_t id) { return takeFresh(id); }};
    if (store_->writersTakeTurns() || claimNext) {
      auto both = store_->writersTakeTurns()
                      ? batcher_->record(owner, attempts, !allRepeatable, claimNext ? &claim : nullptr)
                      : store_->recordAttemptsAndClaim(owner, attempts, !allRepeatable, claim);
      if (both) {
        recorded = std::move(both->recorded);
        if (claimNext) *ahead = std::move(both->claimed);
      } else {
        recorded = std::unexpected(both.error());
      }
    } else {
      recorded = store_->recordAttempts(owner, attempts, !allRepeatable);
    }
    if (!recorded) {
      logLine("recording " + std::to_string(attempts.size()) + " attempts failed: " + recorded.error().message);
    } else {
      for (std::size_t i = 0; i < attempts.size(); ++i) {
        if (!(*recorded)[i]) {
          logLine("recording attempt of delivery " + std::to_string(attempts[i].deliveryId) +
                  " failed: " + (*recorded)[i].error().message);
          continue;
        }
        if (attempts[i].attempt.newStatus != "pending") {
          --backlog_;
          // A delivery waiting for this one ("after") is claimable now.
          more = more || hasDependents[i];
        }
        ++handled;
      }
    }
  }
  if (skipped) store_->releaseLeases(owner);
  if (ahead != nullptr && !ahead->empty()) {
    more = true;
    if (static_cast<int>(ahead->size()) == config_.deliveryClaimBatch) wakeDeliveries();  // more may wait
  }
  return handled;
}

// One waiting worker is woken per signal, not all of them: a worker that claims a full batch wakes
// the next (there may be more), so idle workers do not all race for one message.
void Engine::wakePipeline() {
  {
    std::lock_guard<std::mutex> lock(wakeMutex_);
    ++pipelineSignal_;
  }
  pipelineWake_.notify_one();
}

void Engine::wakeDeliveries() {
  std::lock_guard<std::mutex> lock(wakeMutex_);
  ++deliverySignal_;
  // One idle worker claims; a busy one sees the signal when its pass ends.
  if (DeliveryWorker* w = takeIdleDeliveryWorker()) w->wake.notify_one();
}

Engine::DeliveryWorker* Engine::takeIdleDeliveryWorker() {
  const std::size_t n = deliveryWorkers_.size();
  for (std::size_t j = 0; j < n; ++j) {
    DeliveryWorker& w = *deliveryWorkers_[(nextDeliveryWorker_ + j) % n];
    if (!w.idle) continue;
    w.idle = false;  // taken: the next hand-off or wake-up goes to another
    nextDeliveryWorker_ = (nextDeliveryWorker_ + j + 1) % n;
    return &w;
  }
  return nullptr;
}

void Engine::refreshBacklog() {
  if (auto b = store_->backlog()) backlog_ = *b;
}

// Handed-over messages first; the store is claimed from when it may hold unclaimed work (see
// storeWork_) and once per idle poll interval (expired leases, replays, other engines' leftovers),
// so a message handed over costs no claim, not even an empty one.
void Engine::pipelineLoop(std::string owner) {
  const bool refresher = owner.ends_with("/p0");
  const auto pollEvery = std::chrono::milliseconds(config_.idlePollMs);
  auto lastRefresh = std::chrono::steady_clock::now();
  auto lastClaim = lastRefresh - pollEvery;
  while (running_) {
    std::uint64_t seen;
    {
      std::lock_guard<std::mutex> lock(wakeMutex_);
      seen = pipelineSignal_;
    }
    std::optional<std::chrono::steady_clock::time_point> holdUntil;
    int n = processHandedOver(&holdUntil);
    if (storeWork_.exchange(false) || std::chrono::steady_clock::now() - lastClaim >= pollEvery) {
      lastClaim = std::chrono::steady_clock::now();
      n += processClaimed(owner);
    }
    if (refresher && std::chrono::steady_clock::now() - lastRefresh > std::chrono::seconds(1)) {
      refreshBacklog();
      lastRefresh = std::chrono::steady_clock::now();
    }
    if (n > 0) continue;
    std::unique_lock<std::mutex> lock(wakeMutex_);
    if (holdUntil) {
      // Further commits join the held pass; a claim batch of them ends the wait.
      pipelineWake_.wait_until(lock, *holdUntil, [&] { return !running_ || handoffFull_.load(); });
      continue;
    }
    pipelineWake_.wait_for(lock, std::chrono::milliseconds(config_.idlePollMs),
                           [&] { return !running_ || pipelineSignal_ != seen; });
  }
}

// After a pass the worker claims again at once only when more may be claimable now (a full batch,
// or a delivery that others wait for is done); new deliveries signal, due retries and replays are
// found by the idle poll. So a quiet engine does not follow each delivery with an empty claim.
void Engine::deliveryLoop(DeliveryWorker& worker) {
  // Deliveries claimed together with the last pass's attempts, or handed over by finishes, sent
  // in the next pass. Left over at stop, their leases are released with the owner's others.
  std::vector<store::DeliveryRecord> ahead;
  while (running_) {
    std::uint64_t seen;
    {
      std::lock_guard<std::mutex> lock(wakeMutex_);
      seen = deliverySignal_;
      // Up to a claim batch from the inbox, after what the last pass claimed.
      auto& inbox = worker.inbox;
      const auto batch = static_cast<std::size_t>(std::max(0, config_.deliveryClaimBatch));
      const auto take = std::min(inbox.size(), batch > ahead.size() ? batch - ahead.size() : 0);
      const auto end = inbox.begin() + static_cast<std::ptrdiff_t>(take);
      std::move(inbox.begin(), end, std::back_inserter(ahead));
      inbox.erase(inbox.begin(), end);
    }
    bool more = false;
    int n = runDeliveries(worker.owner, more, &ahead);
    if (!ahead.empty() || (n > 0 && more)) continue;
    std::unique_lock<std::mutex> lock(wakeMutex_);
    worker.idle = true;
    worker.wake.wait_for(lock, std::chrono::milliseconds(config_.idlePollMs),
                         [&] { return !running_ || deliverySignal_ != seen || !worker.inbox.empty(); });
    worker.idle = false;
  }
}

}  // namespace switchboard::runtime
