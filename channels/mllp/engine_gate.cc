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
  static const std::filesystem::file_time_type epoch = std::filesystem::file_time_type::clock::now();
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
    if (ec || written < processEpoch()) {
      return fail(ErrorCode::kTransient, "the engine's HTTP listener is not up yet");
    }
    std::ifstream in(file);
    int p = 0;
    in >> p;
    if (p <= 0 || p > 65535) return fail(ErrorCode::kTransient, "the engine's port file is not readable yet");
    cached = p;
    return p;
  }
};

Result<GateReply> post(const LoopbackGateOptions& options, int port, const core::HttpRequest& request) {
  auto socket = connectTcp(options.host, port, options.timeoutMs);
  if (!socket) return std::unexpected(socket.error());
  std::string out = "POST " + request.path + " HTTP/1.1\r\nHost: " + options.host + ":" + std::to_string(port) +
                    "\r\nConnection: close\r\nContent-Length: " + std::to_string(request.body.size()) + "\r\n";
  for (const auto& h : request.headers) out += h.name + ": " + h.value + "\r\n";
  out += "\r\n";
  out += request.body;
  if (auto w = writeAll(*socket, out, options.timeoutMs); !w) return std::unexpected(w.error());
  std::string in;
  for (;;) {
    auto chunk = readSome(*socket, 64 * 1024, options.timeoutMs);
    if (!chunk) return std::unexpected(chunk.error());
    if (chunk->empty()) break;
    in += *chunk;
    if (in.size() > (64u << 20)) return fail(ErrorCode::kTooLong, "engine answer too large");
  }
  const auto headerEnd = in.find("\r\n\r\n");
  if (!in.starts_with("HTTP/1.") || headerEnd == std::string::npos || in.size() < 12) {
    return fail(ErrorCode::kTransient, "garbled answer from the engine");
  }
  GateReply reply;
  reply.status = std::atoi(in.c_str() + 9);
  std::size_t lineStart = in.find("\r\n") + 2;
  std::size_t contentLength = std::string::npos;
  while (lineStart < headerEnd) {
    std::size_t lineEnd = in.find("\r\n", lineStart);
    std::string_view line(in.data() + lineStart, lineEnd - lineStart);
    auto colon = line.find(':');
    if (colon != std::string_view::npos) {
      std::string_view name = line.substr(0, colon);
      std::string_view value = core::trimHeaderSpace(line.substr(colon + 1));
      if (core::equalsIgnoreCase(name, "X-Switchboard-Message-Ids") && !value.empty()) reply.committed = true;
      if (core::equalsIgnoreCase(name, "Content-Length")) contentLength = std::strtoull(std::string(value).c_str(), nullptr, 10);
    }
    lineStart = lineEnd + 2;
  }
  reply.body = in.substr(headerEnd + 4);
  if (contentLength != std::string::npos && reply.body.size() != contentLength) {
    return fail(ErrorCode::kTransient, "truncated answer from the engine");
  }
  return reply;
}

}  // namespace

Gate loopbackGate(LoopbackGateOptions options) {
  processEpoch();
  auto finder = std::make_shared<PortFinder>();
  finder->options = std::move(options);
  return [finder](const core::HttpRequest& request) -> Result<GateReply> {
    auto port = finder->port(false);
    if (!port) return std::unexpected(port.error());
    auto reply = post(finder->options, *port, request);
    if (!reply && reply.error().code != ErrorCode::kTimeout) {
      // The engine may have restarted listening elsewhere (a new port file): look again once.
      auto again = finder->port(true);
      if (again && *again != *port) reply = post(finder->options, *again, request);
    }
    return reply;
  };
}

}  // namespace switchboard::channels::mllp
