// The running engine: HTTP intake with group commit and backpressure, pipeline workers that claim
// messages with leases, delivery workers with backoff, circuit breakers and dead letters.
// Thread-safety: start() and stop() from one controlling thread; everything else is internal.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "engine/core/clock.h"
#include "engine/runtime/circuit_breaker.h"
#include "engine/runtime/engine_config.h"
#include "engine/runtime/http_server.h"
#include "engine/runtime/intake.h"
#include "engine/runtime/metrics.h"
#include "engine/store/store.h"

namespace switchboard::runtime {

class Engine final : public HttpRouter {
 public:
  using AdminHandler = std::function<core::HttpResponse(const core::HttpRequest&)>;

  Engine(EngineConfig config, std::unique_ptr<store::Store> store, ChannelList channels,
         std::shared_ptr<core::Clock> clock, std::shared_ptr<core::Random> random);
  ~Engine() override;

  // Serves `/api/...` (and `/ui/...`) with `handler`; set before start().
  void setAdminHandler(AdminHandler handler) { admin_ = std::move(handler); }

  // Starts workers, the HTTP listener and the channels' listener sources (each with its
  // channel's intake gate). Throws on a bind failure or a listener source that cannot start
  // (start-up error).
  void start();
  // Graceful: stop intake (listener sources first: the messages they hold are committed and
  // answered), commit what was accepted, let workers finish their current item, release
  // remaining leases.
  void stop();
  int port() const { return server_ ? server_->port() : 0; }

  store::Store& store() { return *store_; }
  const EngineConfig& config() const { return config_; }
  std::shared_ptr<const ChannelList> channels() const;
  // Swaps in a freshly loaded channel list. Requests and workers already holding the old list
  // finish with it; stored messages of a removed channel stay until it comes back. While running,
  // the new list's listener sources are started and the old list's ones not in it are stopped.
  void replaceChannels(ChannelList channels);

  // Commits a message produced inside the engine (e.g. an MPI merge Bundle) to a channel as if
  // its source had accepted it: same group commit, pipeline and deliveries. kNotFound for an
  // unknown channel. Returns the message id (the existing one for a repeated key).
  Result<std::int64_t> ingestInternal(const std::string& channelId, core::InboundMessage message);
  std::string metricsText();

  // HttpRouter.
  std::optional<std::size_t> bodyLimit(const std::string& path) const override;
  core::HttpResponse handle(const core::HttpRequest& request) override;
  // Channel paths without blocking: the answer goes out after the group commit, from the
  // committer thread. Everything else is left to handle() on the server's worker pool.
  bool handleAsync(core::HttpRequest& request, HttpCompletion& done) override;
  void rejectedBeforeBody(const std::string& path, int status) override;

  // One pipeline pass and one delivery pass, for tests with a fake clock. Returns items handled.
  int runPipelineOnce(const std::string& owner);
  int runDeliveriesOnce(const std::string& owner);
  // A delivery pass as the delivery loop runs it: sends `ahead` when it holds deliveries (else
  // claims), and claims the next batch into it with the attempts' transaction.
  int runDeliveriesOnce(const std::string& owner, std::vector<store::DeliveryRecord>& ahead);

 private:
  // What intake decided before the commit.
  struct IntakePlan {
    std::optional<core::HttpResponse> answer;  // answered without a commit
    std::optional<store::AuditRecord> audit;   // written before that answer (a refusal)
    std::vector<store::NewMessage> rows;       // else: committed, then `reply` is sent
    core::HttpResponse reply;
    bool rejected = false;
  };
  core::HttpResponse intake(const Channel& channel, const core::HttpRequest& request);
  IntakePlan planIntake(const Channel& channel, const core::HttpRequest& request);
  // intake() answering whether the reply follows a durable commit, waiting at most `maxWait`
  // for it: the listener sources' gate (listenerGate) and the HTTP path's blocking form.
  core::IntakeReply intakeAndWait(const Channel& channel, const core::HttpRequest& request,
                                  std::optional<std::chrono::milliseconds> maxWait);
  // The gate a listener source of channel `channelId` hands its messages to: that channel's
  // intake in the channel list current at each call.
  core::IntakeGate listenerGate(const std::string& channelId);
  // Starts the listener sources of `list` not started yet; stops those of `dropped` that are not
  // in `list`. Under listenersMutex_; a start failure is returned (start-up) or logged (reload).
  Result<void> syncListeners(const ChannelList& list, const ChannelList* dropped);
  core::HttpResponse finishIntake(const std::string& channelId, IntakePlan& plan,
                                  IntakeBatcher::Outcomes outcomes);
  static const Channel* channelForPath(const ChannelList& list, const std::string& path);
  static const Channel* channelById(const ChannelList& list, const std::string& id);
  store::ProcessOutcome runPipeline(const Channel& channel, const core::StoredMessage& message);
  void linkStatusCallback(core::PipelineMessage& pm);
  // Pipeline passes: over messages intake handed over, over messages claimed from the store, and
  // the work both share (run the channel, finish as `owner`).
  // holdUntil (the pipeline threads): set instead of taking a batch while the pipeline window
  // holds it; null (runPipelineOnce): takes what is there.
  int processHandedOver(std::optional<std::chrono::steady_clock::time_point>* holdUntil);
  int processClaimed(const std::string& owner);
  int processMessages(const std::string& owner, const std::vector<core::StoredMessage>& messages);
  // Commits the outcomes of processed messages (items[i] belongs to messages[i]); returns the count.
  int finishProcessed(const std::string& owner, const std::vector<core::StoredMessage>& messages,
                      std::vector<store::Store::FinishItem>& items);
  std::optional<store::IntakeLease> leaseForIntake(int count);
  void handOver(std::vector<store::NewMessage>& rows, const std::vector<store::IngestOutcome>* outcomes,
                const std::optional<store::IntakeLease>& lease);
  void pipelineLoop(std::string owner);
  // One delivery pass; `more` is set when more deliveries may be claimable right away. With
  // `ahead`, the pass sends the deliveries in it (when any) instead of claiming, and claims the
  // next batch into it in the transaction that records its attempts (the delivery loop).
  int runDeliveries(const std::string& owner, bool& more, std::vector<store::DeliveryRecord>* ahead = nullptr);
  struct DeliveryWorker;
  void deliveryLoop(DeliveryWorker& worker);
  // An idle delivery worker, in turn, marked no longer idle (the caller wakes it); null when
  // none is idle or no delivery thread runs (tests driving passes themselves). Under wakeMutex_.
  DeliveryWorker* takeIdleDeliveryWorker();
  void wakePipeline();
  void wakeDeliveries();
  void refreshBacklog();
  core::HttpResponse throttled(const std::string& why) const;

  EngineConfig config_;
  std::unique_ptr<store::Store> store_;
  std::shared_ptr<const ChannelList> channels_;
  std::shared_ptr<core::Clock> clock_;
  std::shared_ptr<core::Random> random_;
  Metrics metrics_;
  CircuitBreakers breakers_;
  std::unique_ptr<IntakeBatcher> batcher_;
  std::unique_ptr<HttpServer> server_;
  AdminHandler admin_;

  // Whether the current list's listener sources are started (between start() and stop()); held
  // while they are started or stopped and while a reload swaps the list.
  std::mutex listenersMutex_;
  bool listening_ = false;

  std::atomic<bool> running_{false};
  std::atomic<bool> accepting_{true};  // false once stop() begins
  std::atomic<std::int64_t> backlog_{0};
  std::mutex wakeMutex_;
  std::condition_variable pipelineWake_;
  std::uint64_t pipelineSignal_ = 0;
  std::uint64_t deliverySignal_ = 0;
  std::vector<std::thread> threads_;
  std::vector<std::string> owners_;
  // One per delivery thread while running: its lease owner, its own wake-up (wakeDeliveries
  // wakes one idle worker; a hand-off wakes the worker it is for), whether it waits, and the
  // deliveries a finish stored leased to it (FinishItem::deliveryLease) for it to send without
  // a claim. `idle` and `inbox` are guarded by wakeMutex_.
  struct DeliveryWorker {
    std::string owner;
    std::condition_variable wake;
    bool idle = false;
    std::vector<store::DeliveryRecord> inbox;
  };
  std::vector<std::unique_ptr<DeliveryWorker>> deliveryWorkers_;
  std::size_t nextDeliveryWorker_ = 0;  // guarded by wakeMutex_

  // Intake's hand-off (IntakeBatcher::Handoff): messages committed leased to handoffOwner_, in
  // commit order, for the pipeline workers to take without a claim; `handoffReserved_` counts the
  // places promised to commits in flight. The store holds them all, so a crash loses none: their
  // lease expires and a claim takes them.
  struct HandedOver {
    core::StoredMessage message;
    core::Millis leaseUntilMs = 0;
    std::chrono::steady_clock::time_point at;  // handed over
  };
  std::string handoffOwner_;
  std::mutex handoffMutex_;
  std::deque<HandedOver> handoff_;
  std::chrono::steady_clock::time_point
      lastPipelinePass_{};  // a pass last took handed-over messages
  std::atomic<bool> handoffFull_{false};  // a claim batch is handed over: a held pass runs now
  int handoffReserved_ = 0;
  std::atomic<bool> handedOver_{false};  // some message was stored leased to handoffOwner_
  // Set when the store may hold messages that are nobody's (not handed over, or handed over too
  // late); the pipeline claims then, and on its idle poll, but not after every hand-off.
  std::atomic<bool> storeWork_{true};

  // Deliveries a finish stored unleased (every worker busy), due at once, as a claim would load
  // them, for the claim that picks them (ClaimRequest::known: leased without a read back unless
  // attempted meanwhile). Taken once; the oldest dropped past kFreshMax.
  static constexpr std::size_t kFreshMax = 1024;
  void keepFresh(store::DeliveryRecord record);
  std::optional<store::DeliveryRecord> takeFresh(std::int64_t id);
  std::mutex freshMutex_;
  std::unordered_map<std::int64_t, store::DeliveryRecord> fresh_;
  std::deque<std::int64_t> freshOrder_;
};

}  // namespace switchboard::runtime
