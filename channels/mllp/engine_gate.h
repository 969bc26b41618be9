// The MLLP source's way into the engine's intake: each message read from an MLLP connection is
// handed, as an HTTP request to the channel's internal path, to the engine's own HTTP listener on
// loopback, so it takes exactly the path HTTP sources take (source verdict, group commit, answer
// after the durable commit, rejects kept for the message browser, duplicates, backpressure).
// Thread-safety: submit() is called concurrently from connection threads.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>

#include "engine/core/error.h"
#include "engine/core/http_types.h"

namespace switchboard::channels::mllp {

struct GateReply {
  int status = 0;
  std::string body;
  // The engine committed (or found already committed) what it answered: it named the stored
  // message ids (X-Switchboard-Message-Ids). Only then may an MLLP ACK be sent.
  bool committed = false;
};

// Takes a request for the channel's internal path, returns the engine's answer.
using Gate = std::function<Result<GateReply>(const core::HttpRequest& request)>;

struct LoopbackGateOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: read <dataDir>/switchboard.port (written by `serve` once listening)
  std::string dataDir;
  int timeoutMs = 30000;
};

// The production gate: one HTTP/1.1 POST per message over kept-alive loopback connections (up to
// 64 idle ones kept; one the engine closed while idle is replaced and the POST sent again). With
// port 0 the engine's port is read from <dataDir>/switchboard.port, but only from a file written
// after this process loaded its first MLLP channel, less 2 s for coarse file times (a stale file of
// an earlier run is ignored: the message is answered AE until the engine listens).
Gate loopbackGate(LoopbackGateOptions options);

}  // namespace switchboard::channels::mllp
