// A minimal MLLP client for the tests: connect to 127.0.0.1:port, send framed (or raw) bytes,
// read the next framed answer with hl7v2::MllpDeframer.
// Thread-safety: one client per thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "channels/mllp/socket_io.h"
#include "hl7v2/mllp.h"

namespace switchboard::testing {

class MllpClient {
 public:
  explicit MllpClient(int port) {
    auto s = channels::mllp::connectTcp("127.0.0.1", port, 5000);
    if (s) socket_ = std::move(*s);
  }
  bool connected() const { return socket_.valid(); }
  bool sendRaw(std::string_view bytes) {
    return channels::mllp::writeAll(socket_, bytes, 10000).has_value();
  }
  bool send(std::string_view message) { return sendRaw(hl7v2::frame(message)); }
  // The next answer (framing removed); nullopt on timeout, close or a framing error.
  std::optional<std::string> read(int timeoutMs = 20000) {
    for (;;) {
      if (auto item = deframer_.next()) {
        if (!item->has_value()) return std::nullopt;
        return std::move(**item);
      }
      auto bytes = channels::mllp::readSome(socket_, 65536, timeoutMs);
      if (!bytes || bytes->empty()) return std::nullopt;
      deframer_.feed(*bytes);
    }
  }
  // True when nothing at all arrives within `ms` (the connection stays open and silent).
  bool silentFor(int ms) {
    auto bytes = channels::mllp::readSome(socket_, 65536, ms);
    if (bytes && !bytes->empty()) deframer_.feed(*bytes);
    return !bytes && bytes.error().code == ErrorCode::kTimeout;
  }
  void close() { socket_.close(); }

 private:
  channels::mllp::Socket socket_;
  hl7v2::MllpDeframer deframer_;
};

// The A04 of protocols.md 4.4 with control id `controlId` (and sending application `app`).
inline std::string adtA04(const std::string& controlId, const std::string& app = "WAGW") {
  return "MSH|^~\\&|" + app + "|CLINIC|EHR|HOSP|20250301101500||ADT^A04^ADT_A01|" + controlId +
         "|P|2.5.1|||AL|NE\r"
         "EVN|A04|20250301101500\r"
         "PID|1||MRN12345^^^HOSP^MR||Doe^Jane^Q||19800115|F|||123 Main "
         "St^^Springfield^IL^62701^USA^H||^PRN^CP^^1^555^1234567\r"
         "PV1|1|O\r";
}

}  // namespace switchboard::testing
