// The `mllp` source: listens on a TCP host:port for HL7 v2 messages framed with MLLP, commits each
// through the engine's intake (idempotency key: sending application, facility and MSH-10) and
// answers the original-mode ACK only after the commit: AA when stored (or already stored), AR with
// an ERR for input that cannot be used (kept as a rejected message), AE when it could not be
// stored (the sender should send it again). See docs/mllp.md.
// Thread-safety: handle() is called concurrently by the engine; the listener runs its own threads.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "channels/mllp/engine_gate.h"
#include "channels/mllp/mllp_listener.h"
#include "engine/core/connector.h"

namespace switchboard::channels::mllp {

inline constexpr const char* kHl7ContentType = "application/hl7-v2";
// Headers on the listener's requests to the engine (never sent by anyone else: the gate token
// is random per source and checked in constant time).
inline constexpr const char* kGateHeader = "X-Switchboard-Mllp-Gate";
inline constexpr const char* kPeerHeader = "X-Switchboard-Mllp-Peer";
inline constexpr const char* kFrameErrorHeader = "X-Switchboard-Mllp-Frame-Error";

struct MllpSourceConfig {
  std::string channelId;
  ListenerOptions listener;  // host, port, limits
  std::string path;          // the internal HTTP path the listener hands messages to
  LoopbackGateOptions gate;  // how the listener reaches the engine
};

class MllpSource final : public core::HttpSource {
 public:
  // Starts (or takes over, after a reload of the same channel and address) the listener. With a
  // null `gate` the loopback gate of config.gate is used.
  static Result<std::unique_ptr<MllpSource>> start(MllpSourceConfig config, Gate gate = nullptr);
  ~MllpSource() override;

  const std::string& path() const override { return config_.path; }
  std::size_t maxBodyBytes() const override { return config_.listener.maxMessageBytes + 1024; }
  core::SourceVerdict handle(const core::HttpRequest& request) const override;

  // The bound TCP port (the configured one, or the one port 0 picked).
  int port() const;
  const std::string& gateToken() const { return token_; }

  static Result<std::unique_ptr<core::HttpSource>> create(core::ConfigReader& config,
                                                          const core::ConnectorContext& ctx);

 private:
  explicit MllpSource(MllpSourceConfig config);
  MllpSourceConfig config_;
  std::string key_;    // the listener's entry (channel and address)
  std::string token_;  // the gate token shared by every source of that listener
  std::shared_ptr<MllpListener> listener_;
};

// The ACK's MSH-7 (UTC, yyyyMMddHHmmss) and a fresh MSH-10 for it.
std::string ackTimestamp();
std::string nextAckControlId();

}  // namespace switchboard::channels::mllp
