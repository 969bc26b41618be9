// The `mllp` source: listens on a TCP host:port for HL7 v2 messages framed with MLLP, commits each
// through the engine's intake gate (idempotency key: sending application, facility and MSH-10)
// and answers the original-mode ACK only after the commit: AA when stored (or already stored), AR
// with an ERR for input that cannot be used (kept as a rejected message), AE when it could not be
// stored (the sender should send it again). See docs/mllp.md.
// Thread-safety: handle() is called concurrently from the listener's connection threads (through
// the gate); start() and stop() from the engine's controlling thread.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "channels/mllp/mllp_listener.h"
#include "engine/core/connector.h"

namespace switchboard::channels::mllp {

inline constexpr const char* kHl7ContentType = "application/hl7-v2";
// Headers of the requests the listener hands to the gate (built in process, never read from a
// network peer).
inline constexpr const char* kPeerHeader = "X-Switchboard-Mllp-Peer";
inline constexpr const char* kFrameErrorHeader = "X-Switchboard-Mllp-Frame-Error";

struct MllpSourceConfig {
  std::string channelId;
  ListenerOptions listener;  // host, port, limits
  std::chrono::milliseconds commitTimeout{30000};  // longest wait for the commit, then AE
  std::string dataDir;  // where mllp-<channel id>.port is written; empty: not written
};

class IntakeHandler;

class MllpSource final : public core::ListenerSource {
 public:
  // Binds the listener, or joins the one a source of the same channel and address holds (a
  // reload builds the new source while the old one still runs). kTransient when the address
  // cannot be bound. Until start() this source hands nothing to intake: a listener only it holds
  // answers every message AE.
  static Result<std::unique_ptr<MllpSource>> open(MllpSourceConfig config);
  ~MllpSource() override;

  core::SourceVerdict handle(const core::HttpRequest& request) const override;
  // Hands the listener's messages to `gate` from now on (the last source started serves a shared
  // listener). kInvalid when started or stopped before (a source serves one engine run).
  Result<void> start(core::IntakeGate gate) override;
  // Gives a shared listener back to another started source of it, or stops it accepting and
  // closes its connections; then waits for this source's gate calls in flight.
  void stop() override;

  // The bound TCP port (the configured one, or the one port 0 picked).
  int port() const;

  static Result<std::unique_ptr<core::HttpSource>> create(core::ConfigReader& config,
                                                          const core::ConnectorContext& ctx);

 private:
  explicit MllpSource(MllpSourceConfig config);
  MllpSourceConfig config_;
  std::string key_;  // the listener's entry (channel and address)
  std::shared_ptr<IntakeHandler> handler_;
  std::shared_ptr<MllpListener> listener_;
  bool started_ = false;
  bool stopped_ = false;
};

// The ACK's MSH-7 (UTC, yyyyMMddHHmmss) and a fresh MSH-10 for it.
std::string ackTimestamp();
std::string nextAckControlId();

}  // namespace switchboard::channels::mllp
