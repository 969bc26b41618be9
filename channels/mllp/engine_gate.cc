#include "channels/mllp/engine_gate.h"

#include <cstdlib>
#include <fstream>
#include <memory>

#include "channels/mllp/socket_io.h"

namespace switchboard::channels::mllp {
namespace {

// When this process loaded its first MLLP channel: a port file older than this is an earlier
// run's.
std::filesystem::file_time_type processEpoch() {
  static const std::filesystem::file_time_type epoch =
      std::filesystem::file_time_type::clock::now();
  return epoch;
}

struct PortFinder {
  LoopbackGateOptions options;
  std::mutex mutex;
  int cached = 0;

  Result<int> port(bool refresh) {
    if (options.port > 0) return options.port;
    std::lock_guard<std::mutex> lock(mutex);
    if (cached > 0 && !refresh) return cached;
    const std::filesystem::path file = std::filesystem::path(options.dataDir) / "switchboard.port";
    std::error_code ec;
    auto written = std::filesystem::last_write_time(file, ec);
    // File times may lag the clock by a tick; a stale file that slips through this margin names
    // a closed port (refused: AE, and looked up again on the next message) or a process that does
    // not answer with stored message ids (AE as well).
    if (ec || written < processEpoch() - std::chrono::seconds(2)) {
      return fail(ErrorCode::kTransient, "the engine's HTTP listener is not up yet");
    }
    std::ifstream in(file);
    int p = 0;
    in >> p;
    if (p <= 0 || p > 65535)
      return fail(ErrorCode::kTransient, "the engine's port file is not readable yet");
    cached = p;
    return p;
  }
};

// One exchange on `socket`. `sentNothingBack` is set when the connection ended before any byte of
// an answer came (a kept connection the server had closed: the request can be sent again).
Result<GateReply> exchange(const LoopbackGateOptions& options, int port, const Socket& socket,
                           const core::HttpRequest& request, bool& reusable,
                           bool& sentNothingBack) {
  reusable = false;
  sentNothingBack = false;
  std::string out = "POST " + request.path + " HTTP/1.1\r\nHost: " + options.host + ":" +
                    std::to_string(port) +
                    "\r\nContent-Length: " + std::to_string(request.body.size()) + "\r\n";
  for (const auto& h : request.headers) out += h.name + ": " + h.value + "\r\n";
  out += "\r\n";
  out += request.body;
  if (auto w = writeAll(socket, out, options.timeoutMs); !w) {
    sentNothingBack = true;
    return std::unexpected(w.error());
  }
  std::string in;
  std::size_t headerEnd = std::string::npos;
  std::size_t contentLength = std::string::npos;
  bool close = false;
  GateReply reply;
  for (;;) {
    if (headerEnd == std::string::npos && (headerEnd = in.find("\r\n\r\n")) != std::string::npos) {
      if (!in.starts_with("HTTP/1.") || in.size() < 12)
        return fail(ErrorCode::kTransient, "garbled answer from the engine");
      reply.status = std::atoi(in.c_str() + 9);
      std::size_t lineStart = in.find("\r\n") + 2;
      while (lineStart < headerEnd) {
        std::size_t lineEnd = in.find("\r\n", lineStart);
        std::string_view line(in.data() + lineStart, lineEnd - lineStart);
        if (auto colon = line.find(':'); colon != std::string_view::npos) {
          std::string_view name = line.substr(0, colon);
          std::string_view value = core::trimHeaderSpace(line.substr(colon + 1));
          if (core::equalsIgnoreCase(name, "X-Switchboard-Message-Ids") && !value.empty())
            reply.committed = true;
          if (core::equalsIgnoreCase(name, "Content-Length")) {
            contentLength = std::strtoull(std::string(value).c_str(), nullptr, 10);
          }
          if (core::equalsIgnoreCase(name, "Connection") && core::headerListHas(value, "close"))
            close = true;
        }
        lineStart = lineEnd + 2;
      }
    }
    if (headerEnd != std::string::npos && contentLength != std::string::npos &&
        in.size() >= headerEnd + 4 + contentLength) {
      reply.body = in.substr(headerEnd + 4, contentLength);
      reusable = !close && in.size() == headerEnd + 4 + contentLength;
      return reply;
    }
    auto chunk = readSome(socket, 64 * 1024, options.timeoutMs);
    if (!chunk) return std::unexpected(chunk.error());
    if (chunk->empty()) {
      if (in.empty()) {
        sentNothingBack = true;
        return fail(ErrorCode::kTransient, "the engine closed the connection");
      }
      if (headerEnd != std::string::npos && contentLength == std::string::npos) {
        reply.body = in.substr(headerEnd + 4);  // no length: the body ran to the close
        return reply;
      }
      return fail(ErrorCode::kTransient, "truncated answer from the engine");
    }
    in += *chunk;
    if (in.size() > (64u << 20)) return fail(ErrorCode::kTooLong, "engine answer too large");
  }
}

// Kept-alive connections to the engine, so a busy MLLP source does not open (and leave in
// TIME_WAIT) one connection per message.
struct ConnectionPool {
  std::mutex mutex;
  std::vector<std::pair<int, Socket>> idle;  // (port, connection)
  static constexpr std::size_t kMaxIdle = 64;

  Socket take(int port) {
    std::lock_guard<std::mutex> lock(mutex);
    for (auto it = idle.begin(); it != idle.end(); ++it) {
      if (it->first == port) {
        Socket s = std::move(it->second);
        idle.erase(it);
        return s;
      }
    }
    return {};
  }
  void give(int port, Socket socket) {
    std::lock_guard<std::mutex> lock(mutex);
    if (idle.size() < kMaxIdle) idle.emplace_back(port, std::move(socket));
  }
};

Result<GateReply> post(const LoopbackGateOptions& options, ConnectionPool& pool, int port,
                       const core::HttpRequest& request) {
  Socket kept = pool.take(port);
  if (kept.valid()) {
    bool reusable = false, nothingBack = false;
    auto reply = exchange(options, port, kept, request, reusable, nothingBack);
    if (reply && reusable) pool.give(port, std::move(kept));
    // A kept connection the engine had closed while idle: send once more on a new one (a
    // repeat is harmless: the idempotency key answers it as a duplicate).
    if (reply || !nothingBack) return reply;
  }
  auto socket = connectTcp(options.host, port, options.timeoutMs);
  if (!socket) return std::unexpected(socket.error());
  bool reusable = false, nothingBack = false;
  auto reply = exchange(options, port, *socket, request, reusable, nothingBack);
  if (reply && reusable) pool.give(port, std::move(*socket));
  return reply;
}

}  // namespace

Gate loopbackGate(LoopbackGateOptions options) {
  processEpoch();
  auto finder = std::make_shared<PortFinder>();
  finder->options = std::move(options);
  auto pool = std::make_shared<ConnectionPool>();
  return [finder, pool](const core::HttpRequest& request) -> Result<GateReply> {
    auto port = finder->port(false);
    if (!port) return std::unexpected(port.error());
    auto reply = post(finder->options, *pool, *port, request);
    if (!reply && reply.error().code != ErrorCode::kTimeout) {
      // The engine may have restarted listening elsewhere (a new port file): look again once.
      auto again = finder->port(true);
      if (again && *again != *port) reply = post(finder->options, *pool, *again, request);
    }
    return reply;
  };
}

}  // namespace switchboard::channels::mllp
