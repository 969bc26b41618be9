#include "channels/mllp/mllp_source.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <vector>

#include "hl7v2/ack.h"
#include "hl7v2/message.h"

namespace switchboard::channels::mllp {
namespace {

// One ACK for `incoming` (parsed or raw bytes); never fails: a last-resort ACK is written by hand.
std::string ackFor(std::string_view incoming, hl7v2::AckCode code,
                   std::vector<hl7v2::AckError> errors, std::string text = {}) {
  hl7v2::AckOptions options;
  options.code = code;
  options.controlId = nextAckControlId();
  options.timestamp = ackTimestamp();
  options.textMessage = std::move(text);
  options.errors = std::move(errors);
  auto ack = hl7v2::buildAckForBytes(incoming, options);
  if (!ack) {
    options.errors.clear();
    options.textMessage.clear();
    ack = hl7v2::buildAckForBytes("", options);
  }
  return ack ? ack->toEr7() : std::string();
}

hl7v2::AckError errorOf(int code, std::string userMessage, hl7v2::ErrorLocation location = {}) {
  hl7v2::AckError e;
  e.code = code;
  e.location = std::move(location);
  e.userMessage = std::move(userMessage);
  return e;
}

}  // namespace

// What the listener does with each message: hand it to the engine's intake through the gate the
// engine started the source with; AE while there is none (before start, after stop).
class IntakeHandler final : public MllpHandler {
 public:
  IntakeHandler(std::string channelId, std::chrono::milliseconds commitTimeout)
      : channelId_(std::move(channelId)), commitTimeout_(commitTimeout) {}

  void open(core::IntakeGate gate) {
    std::lock_guard<std::mutex> lock(mutex_);
    gate_ = std::move(gate);
  }
  // Refuses new calls and waits for those in flight (their commits and answers).
  void close() {
    std::unique_lock<std::mutex> lock(mutex_);
    closed_ = true;
    idle_.wait(lock, [this] { return inFlight_ == 0; });
    gate_ = nullptr;
  }

  std::string onMessage(std::string_view message, const std::string& peer) override {
    auto reply = submit(message, peer, {});
    if (reply && reply->committed && (reply->reply.status == 200 || reply->reply.status == 400) &&
        reply->reply.body.starts_with("MSH")) {
      return reply->reply.body;
    }
    std::string why = reply ? "engine answered HTTP " + std::to_string(reply->reply.status)
                            : reply.error().message;
    std::fprintf(stderr,
                 "switchboard: mllp channel %s: message from %s not stored (%s); answered AE\n",
                 channelId_.c_str(), peer.c_str(), why.c_str());
    return ackFor(message, hl7v2::AckCode::kAE,
                  {errorOf(207, "message not stored, send it again: " + why)});
  }

  std::string onFrameError(const Error& error, const std::string& peer) override {
    if (error.code == ErrorCode::kInvalid &&
        error.message.find("before the MLLP start byte") != std::string::npos) {
      // Bytes between frames: no message to answer; skipped up to the next start byte.
      std::fprintf(stderr, "switchboard: mllp channel %s: %s from %s skipped\n", channelId_.c_str(),
                   error.message.c_str(), peer.c_str());
      return {};
    }
    const std::string what =
        std::string(error.code == ErrorCode::kTooLong ? "too-long" : "invalid") + ": " +
        error.message + " (" + error.location + ")";
    auto reply = submit({}, peer, what);
    if (reply && reply->committed && reply->reply.status == 400 &&
        reply->reply.body.starts_with("MSH"))
      return reply->reply.body;
    std::fprintf(stderr, "switchboard: mllp channel %s: frame error from %s not recorded: %s\n",
                 channelId_.c_str(), peer.c_str(),
                 reply ? ("HTTP " + std::to_string(reply->reply.status)).c_str()
                       : reply.error().message.c_str());
    return ackFor({}, hl7v2::AckCode::kAR, {errorOf(207, what)});
  }

 private:
  Result<core::IntakeReply> submit(std::string_view body, const std::string& peer,
                                   const std::string& frameError) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!gate_ || closed_)
        return fail(ErrorCode::kTransient,
                    closed_ ? "the engine is stopping" : "the engine is not taking messages yet");
      ++inFlight_;  // gate_ stays until close() has seen this call return
    }
    core::HttpRequest request;
    request.method = "POST";
    request.scheme = "mllp";
    request.headers.push_back({"Content-Type", kHl7ContentType});
    request.headers.push_back({kPeerHeader, peer});
    if (!frameError.empty()) request.headers.push_back({kFrameErrorHeader, frameError});
    request.body.assign(body);
    Result<core::IntakeReply> reply;
    try {
      reply = gate_(request, commitTimeout_);
    } catch (const std::exception& e) {
      reply = fail(ErrorCode::kException, std::string("intake failed: ") + e.what());
    }
    std::lock_guard<std::mutex> lock(mutex_);
    if (--inFlight_ == 0) idle_.notify_all();
    return reply;
  }

  const std::string channelId_;
  const std::chrono::milliseconds commitTimeout_;
  std::mutex mutex_;
  std::condition_variable idle_;
  core::IntakeGate gate_;  // set under mutex_; called outside it while inFlight_ counts the call
  int inFlight_ = 0;
  bool closed_ = false;
};

namespace {

// Listeners by channel and address, so a reloaded channel takes over its predecessor's socket
// instead of failing to bind it. Every source holding a listener is listed; the one started last
// serves, and when it stops (a reload dropped it, or one that failed after starting) the started
// one before it serves again. A listener closes when its last started source stops or when no
// source holds it any more; its entry then goes, so a later source binds afresh.
struct Holder {
  const MllpSource* source;
  std::shared_ptr<IntakeHandler> handler;
  bool started = false;
};
struct HubEntry {
  std::weak_ptr<MllpListener> listener;
  std::vector<Holder> holders;
};
struct ListenerHub {
  std::mutex mutex;
  std::map<std::string, HubEntry> entries;
  // The entry of `listener` under `key`, if it is still that listener's.
  HubEntry* find(const std::string& key, const MllpListener* listener) {
    auto it = entries.find(key);
    if (it == entries.end() || it->second.listener.lock().get() != listener) return nullptr;
    return &it->second;
  }
};
ListenerHub& hub() {
  static ListenerHub h;
  return h;
}

core::SourceVerdict rejectWithAck(core::InboundMessage raw, Error error, std::string ack) {
  core::SourceVerdict v = core::SourceVerdict::reject(std::move(raw), std::move(error), 400);
  v.reply = core::HttpResponse::text(400, std::move(ack), kHl7ContentType);
  return v;
}

}  // namespace

std::string ackTimestamp() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  char buffer[16];
  std::strftime(buffer, sizeof buffer, "%Y%m%d%H%M%S", &tm);
  return buffer;
}

std::string nextAckControlId() {
  static std::atomic<std::uint32_t> counter{0};
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  return "SB" + std::to_string(ms) + std::to_string(counter.fetch_add(1) % 1000);
}

MllpSource::MllpSource(MllpSourceConfig config) : config_(std::move(config)) {}

MllpSource::~MllpSource() {
  stop();
  {
    std::lock_guard<std::mutex> lock(hub().mutex);
    if (HubEntry* entry = hub().find(key_, listener_.get())) {
      std::erase_if(entry->holders, [this](const Holder& h) { return h.source == this; });
      if (entry->holders.empty()) hub().entries.erase(key_);
    }
  }
  listener_.reset();  // the last holder closes the socket and joins its threads
}

int MllpSource::port() const { return listener_ ? listener_->port() : 0; }

Result<std::unique_ptr<MllpSource>> MllpSource::open(MllpSourceConfig config) {
  std::unique_ptr<MllpSource> source(new MllpSource(std::move(config)));
  const MllpSourceConfig& c = source->config_;
  source->handler_ = std::make_shared<IntakeHandler>(c.channelId, c.commitTimeout);
  // Port 0 included: a reloaded channel keeps the port it was given.
  source->key_ = c.channelId + "@" + c.listener.host + ":" + std::to_string(c.listener.port);
  std::lock_guard<std::mutex> lock(hub().mutex);
  HubEntry& entry = hub().entries[source->key_];
  if (auto existing = entry.listener.lock()) {
    entry.holders.push_back({source.get(), source->handler_});
    source->listener_ = std::move(existing);
    return source;
  }
  auto listener = MllpListener::start(c.listener, source->handler_);
  if (!listener) {
    hub().entries.erase(source->key_);
    source->key_.clear();
    return std::unexpected(listener.error());
  }
  source->listener_ = std::shared_ptr<MllpListener>(std::move(*listener));
  entry = HubEntry{source->listener_, {{source.get(), source->handler_}}};
  std::fprintf(stderr, "switchboard: mllp channel %s listening on %s:%d\n", c.channelId.c_str(),
               c.listener.host.c_str(), source->listener_->port());
  if (!c.dataDir.empty()) {
    // Port 0 picks a free port; tests and operators find it here.
    std::error_code ec;
    std::filesystem::create_directories(c.dataDir, ec);
    std::ofstream(std::filesystem::path(c.dataDir) / ("mllp-" + c.channelId + ".port"),
                  std::ios::trunc)
        << source->listener_->port() << "\n";
  }
  return source;
}

Result<void> MllpSource::start(core::IntakeGate gate) {
  if (started_ || stopped_)
    return fail(ErrorCode::kInvalid, "the mllp source was started or stopped before");
  if (!gate) return fail(ErrorCode::kInvalid, "no intake gate");
  handler_->open(std::move(gate));
  std::lock_guard<std::mutex> lock(hub().mutex);
  HubEntry* entry = hub().find(key_, listener_.get());
  if (entry == nullptr) return fail(ErrorCode::kTransient, "the mllp listener was closed");
  // The last one started serves: move this source's holder to the end.
  auto mine = std::find_if(entry->holders.begin(), entry->holders.end(),
                           [this](const Holder& h) { return h.source == this; });
  Holder holder = *mine;
  holder.started = true;
  entry->holders.erase(mine);
  entry->holders.push_back(std::move(holder));
  listener_->setHandler(handler_);
  started_ = true;
  return {};
}

void MllpSource::stop() {
  if (stopped_) return;
  stopped_ = true;
  if (!started_) return;  // never served: nothing to hand back
  bool handedOver = false;
  {
    std::lock_guard<std::mutex> lock(hub().mutex);
    if (HubEntry* entry = hub().find(key_, listener_.get())) {
      for (auto& h : entry->holders) {
        if (h.source == this) h.started = false;
      }
      auto serving = std::find_if(entry->holders.rbegin(), entry->holders.rend(),
                                  [](const Holder& h) { return h.started; });
      if (serving != entry->holders.rend()) {
        listener_->setHandler(serving->handler);
        handedOver = true;
      } else {
        hub().entries.erase(key_);  // a later source of this channel and address binds afresh
      }
    }
  }
  // Messages in flight are committed and answered first; the ones after get AE.
  handler_->close();
  if (!handedOver) listener_->stop();
}

core::SourceVerdict MllpSource::handle(const core::HttpRequest& request) const {
  using core::SourceVerdict;
  core::InboundMessage raw;
  raw.contentType = kHl7ContentType;
  raw.body = request.body;
  core::setMetadata(raw.metadata, "kind", "hl7v2");
  if (const std::string* peer = request.header(kPeerHeader))
    core::setMetadata(raw.metadata, "peer", *peer);

  if (const std::string* frameError = request.header(kFrameErrorHeader)) {
    core::setMetadata(raw.metadata, "kind", "hl7v2-frame-error");
    const ErrorCode code =
        frameError->starts_with("too-long") ? ErrorCode::kTooLong : ErrorCode::kInvalid;
    std::string ack = ackFor({}, hl7v2::AckCode::kAR, {errorOf(207, *frameError)});
    return rejectWithAck(std::move(raw), Error(code, "MLLP frame dropped: " + *frameError),
                         std::move(ack));
  }

  hl7v2::ParseLimits limits;
  limits.maxBytes = config_.listener.maxMessageBytes;
  auto message = hl7v2::Message::parse(request.body, limits);
  if (!message) {
    const Error& e = message.error();
    std::string text = e.message + (e.location.empty() ? "" : " at " + e.location);
    std::string ack = ackFor(request.body, hl7v2::AckCode::kAR,
                             {errorOf(e.code == ErrorCode::kTooLong ? 207 : 100, text)});
    return rejectWithAck(std::move(raw),
                         Error(e.code, "HL7 v2 message does not parse: " + text, e.location),
                         std::move(ack));
  }
  const std::string controlId = message->controlId();
  core::setMetadata(raw.metadata, "message_type",
                    message->messageCode() + "^" + message->triggerEvent());
  core::setMetadata(raw.metadata, "control_id", controlId);
  core::setMetadata(raw.metadata, "sending_application", message->get("MSH-3").value_or(""));
  core::setMetadata(raw.metadata, "sending_facility", message->get("MSH-4").value_or(""));
  core::setMetadata(raw.metadata, "version", message->version());
  if (controlId.empty()) {
    std::string ack =
        ackFor(request.body, hl7v2::AckCode::kAR,
               {errorOf(101, "MSH-10 (message control id) is empty", {"MSH", 1, 10})});
    return rejectWithAck(
        std::move(raw),
        Error(ErrorCode::kRequired, "MSH-10 (message control id) is empty", "MSH-10"),
        std::move(ack));
  }
  hl7v2::AckOptions options;
  options.code = hl7v2::AckCode::kAA;
  options.controlId = nextAckControlId();
  options.timestamp = ackTimestamp();
  auto ack = hl7v2::buildAck(*message, options);
  if (!ack) {
    std::string fallback =
        ackFor(request.body, hl7v2::AckCode::kAR, {errorOf(207, ack.error().message)});
    return rejectWithAck(std::move(raw),
                         Error(ack.error().code, "cannot acknowledge: " + ack.error().message),
                         std::move(fallback));
  }
  // Scoped by sender: two systems may both number their messages from 1.
  raw.idempotencyKey = "hl7v2|" + message->getRaw("MSH-3").value_or("") + "|" +
                       message->getRaw("MSH-4").value_or("") + "|" +
                       message->getRaw("MSH-10").value_or("");
  std::vector<core::InboundMessage> messages;
  messages.push_back(std::move(raw));
  return SourceVerdict::accept(std::move(messages),
                               core::HttpResponse::text(200, ack->toEr7(), kHl7ContentType));
}

Result<std::unique_ptr<core::HttpSource>> MllpSource::create(core::ConfigReader& config,
                                                             const core::ConnectorContext& ctx) {
  MllpSourceConfig c;
  c.channelId = ctx.channelId;
  c.listener.host =
      config.string("host", "127.0.0.1", "address to listen on (loopback by default)");
  c.listener.port = static_cast<int>(
      config.integer("port", -1, 0, 65535, "TCP port to listen on (0: any free port)"));
  if (c.listener.port < 0) config.invalid("port", "a TCP port (0 to 65535)");
  c.listener.maxMessageBytes = static_cast<std::size_t>(
      config.integer("max_message_bytes", 1 << 20, 64, 64 << 20,
                     "largest message accepted; a larger frame is answered AR"));
  c.listener.maxConnections = static_cast<int>(
      config.integer("max_connections", 32, 1, 4096, "connections served at once"));
  c.listener.idleTimeoutMs = static_cast<int>(config.integer(
      "idle_timeout_ms", 600000, 0, 86400000, "close a connection silent this long (0: never)"));
  c.listener.allowLineBreaksBetweenFrames =
      config.boolean("allow_line_breaks_between_frames", false,
                     "skip CR/LF bytes some senders put between frames");
  c.commitTimeout = std::chrono::milliseconds(config.integer(
      "commit_timeout_ms", 30000, 100, 600000, "longest wait for the engine's commit before AE"));
  c.dataDir = ctx.dataDir;
  if (auto r = config.finish(); !r) return std::unexpected(r.error());
  const std::string file = config.file(), pointer = config.pointerOf("port");
  auto source = open(std::move(c));
  if (!source)
    return std::unexpected(
        core::configError(file, pointer, "an address to listen on: " + source.error().message));
  return std::unique_ptr<core::HttpSource>(std::move(*source));
}

}  // namespace switchboard::channels::mllp
