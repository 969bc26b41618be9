// Connector interfaces: sources turn requests into inbound messages, stages (filter, transformer)
// shape a message in the pipeline, destinations deliver it. Each connector type registers a
// factory that validates its config once at deploy time and returns the object used per message.
// Thread-safety: handle(), process(), send() and sendMany() are called concurrently from several
// threads and must not mutate shared state without their own synchronisation.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine/core/config.h"
#include "engine/core/error.h"
#include "engine/core/http_types.h"
#include "engine/core/message.h"

namespace switchboard::core {

// What a source decided about one HTTP request.
struct SourceVerdict {
  enum class Kind {
    kAccept,   // commit `messages` in one transaction, then answer `reply`
    kReject,   // authenticated but unusable input: keep the raw body as a rejected message
               // carrying `error` (visible in the message browser), answer `reply`
    kRefuse,   // authentication failed: audit `auditReason` only, store nothing, answer `reply`
    kRespond,  // answer `reply` and store nothing (e.g. a verification handshake)
  };
  Kind kind = Kind::kAccept;
  std::vector<InboundMessage> messages;  // kAccept: one or more; kReject: exactly one
  HttpResponse reply;
  Error error;              // kReject: why
  std::string auditReason;  // kRefuse: why, without secrets or PHI

  static SourceVerdict accept(std::vector<InboundMessage> messages, HttpResponse reply);
  static SourceVerdict reject(InboundMessage raw, Error error, int status);
  static SourceVerdict refuse(std::string reason, int status = 401);
  static SourceVerdict respond(HttpResponse reply);
};

// A source served by the engine's HTTP server at an exact path.
class HttpSource {
 public:
  virtual ~HttpSource() = default;
  virtual const std::string& path() const = 0;
  virtual std::size_t maxBodyBytes() const = 0;
  // Authenticates and splits one request. Fast and non-blocking: no network or disk I/O.
  virtual SourceVerdict handle(const HttpRequest& request) const = 0;
};

// What the engine's intake answered a listener source's request (IntakeGate).
struct IntakeReply {
  // The source verdict's reply once the commit is durable, or the engine's own answer when
  // nothing was committed (503 throttled, shutting down or store down; 4xx refused; ...).
  HttpResponse reply;
  // Set only when what the verdict kept (accepted messages, or the rejected record) is durably
  // stored now or was already (a duplicate): only then may `reply` acknowledge the message.
  bool committed = false;
};

// The engine's intake for one channel, handed to a ListenerSource: runs exactly what an HTTP
// request to an HTTP source goes through (the source's verdict through handle(), refusals audited,
// rejects kept, the group commit, duplicates, backpressure, metrics) and returns once the commit
// is durable or has failed, or after `maxWait` (then not committed: the message may still be
// stored later, and a resend is answered as a duplicate). Called concurrently from any thread.
using IntakeGate =
    std::function<IntakeReply(const HttpRequest& request, std::chrono::milliseconds maxWait)>;

// A source that owns its listener (a TCP port: MLLP) instead of an HTTP path. The engine serves
// it no HTTP path (path() is empty), starts it with the channel's IntakeGate when the engine
// starts or a reload brings it in, and stops it when the engine stops or a reload drops it.
// handle() turns the requests the source builds from what it receives into verdicts, as for any
// source. The factory may bind the listener (so a busy address fails the channel's load); until
// start() the source must not hand anything to intake.
class ListenerSource : public HttpSource {
 public:
  const std::string& path() const final;
  std::size_t maxBodyBytes() const final { return 0; }
  // From now on hands each message to `gate`. Called once from the engine's controlling thread.
  virtual Result<void> start(IntakeGate gate) = 0;
  // Stops handing messages to the gate, after the calls in flight have returned; the listener
  // stops accepting unless another started source of the same channel shares it (a reload).
  // Idempotent; also run by the destructor.
  virtual void stop() = 0;
};

// A message travelling through the pipeline: starts as the stored raw message; stages may
// replace payload, contentType and metadata.
struct PipelineMessage {
  const StoredMessage* message = nullptr;
  std::string payload;
  std::string contentType;
  Metadata metadata;
  std::vector<std::pair<std::string, std::string>> events;  // (type, detail) appended by stages
};

struct StageResult {
  enum class Kind { kContinue, kDrop, kFail };
  Kind kind = Kind::kContinue;
  Error error;       // kFail: why (becomes the message's error and an OperationOutcome)
  std::string note;  // kDrop: why it was filtered
  static StageResult proceed() { return {}; }
  static StageResult drop(std::string note) { return {Kind::kDrop, {}, std::move(note)}; }
  static StageResult failure(Error e) { return {Kind::kFail, std::move(e), {}}; }
};

// A filter or transformer.
class Stage {
 public:
  virtual ~Stage() = default;
  virtual StageResult process(PipelineMessage& message) const = 0;
  // Called by the pipeline once per batch of messages, after process() has run for them and
  // before their outcomes (and so their deliveries) are committed: a stage whose side effects
  // outside the message store are committed without a flush of their own (the MPI's records)
  // puts them on disk here, once for the batch. An error leaves the batch's messages of this
  // channel unfinished: they are processed again once their lease expires.
  virtual Result<void> settle() const { return {}; }
};

// One delivery's outcome from Destination::sendMany().
struct SentDelivery {
  DeliveryResult result;
  std::chrono::steady_clock::duration elapsed{};  // its send's duration (the attempt's)
};

// A destination delivers one payload per call. It must not retry itself: the runner owns retries,
// backoff, circuit breaking and dead letters.
class Destination {
 public:
  virtual ~Destination() = default;
  // Identifies the remote endpoint for the circuit breaker (e.g. "https://ehr.example/fhir").
  virtual std::string endpointKey() const = 0;
  virtual DeliveryResult send(const DeliveryRequest& request) = 0;
  // Sends the deliveries of one delivery worker's pass that go to this destination; sent[i]
  // answers requests[i] (the spans have one size). Each is sent once, as send() would, and none
  // is retried here; a destination may overlap them (several connections at once). The default
  // sends them one after another through send(); one that throws becomes that delivery's Retry.
  virtual void sendMany(std::span<const DeliveryRequest* const> requests,
                        std::span<SentDelivery> sent);
  // The most deliveries one sendMany() call takes. The runner hands them over in handfuls of this
  // size and asks the circuit breaker before each handful: with the default (1) the breaker sits
  // between any two sends; with n, a failing peer may see up to n - 1 sends more than with 1.
  virtual std::size_t sendsAtOnce() const { return 1; }
};

// What a factory receives: the connector's config object with its location, and the engine's
// data directory for connectors that keep files.
struct ConnectorContext {
  std::string channelId;
  std::string dataDir;
  std::string confDir;  // directory of the engine config, to resolve relative paths
};

template <typename T>
using Factory =
    std::function<Result<std::unique_ptr<T>>(ConfigReader& config, const ConnectorContext& ctx)>;

// Connector types by name. Built once at start-up by registerBuiltinConnectors(); read-only after.
class ConnectorRegistry {
 public:
  void addSource(std::string type, Factory<HttpSource> factory);
  void addStage(std::string type, Factory<Stage> factory);
  void addDestination(std::string type, Factory<Destination> factory);

  const Factory<HttpSource>* source(const std::string& type) const;
  const Factory<Stage>* stage(const std::string& type) const;
  const Factory<Destination>* destination(const std::string& type) const;

  std::vector<std::string> sourceTypes() const;
  std::vector<std::string> stageTypes() const;
  std::vector<std::string> destinationTypes() const;

 private:
  std::vector<std::pair<std::string, Factory<HttpSource>>> sources_;
  std::vector<std::pair<std::string, Factory<Stage>>> stages_;
  std::vector<std::pair<std::string, Factory<Destination>>> destinations_;
};

// Serialises an OperationOutcome with one error issue for `error`.
std::string operationOutcomeJson(const Error& error, const char* severity = "error");

}  // namespace switchboard::core
