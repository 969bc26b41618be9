#include "channels/mllp/mllp_destination.h"

#include <chrono>

#include "hl7v2/message.h"
#include "hl7v2/mllp.h"

namespace switchboard::channels::mllp {
namespace {

// The ACK as one line for the delivery's response (segments joined by " | " would be ambiguous
// with the field separator, so CR becomes "\r" written out), cut at 2,000 bytes.
std::string printable(std::string_view ack) {
  std::string out;
  for (char c : ack) {
    if (out.size() >= 2000) {
      out += "...";
      break;
    }
    if (c == '\r') {
      out += "\\r";
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

// ERR-3.2 (or ERR-3.1) and ERR-8 of every ERR, for the delivery's response.
std::string errText(const hl7v2::Message& ack) {
  std::string out;
  for (std::size_t i = 1; i <= ack.count("ERR"); ++i) {
    const std::string n = "ERR[" + std::to_string(i) + "]";
    std::string code = ack.get(n + "-3.1").value_or("");
    std::string text = ack.get(n + "-3.2").value_or("");
    std::string user = ack.get(n + "-8").value_or("");
    std::string where = ack.getRaw(n + "-2").value_or("");
    std::string one = code;
    if (!text.empty()) one += (one.empty() ? "" : " ") + text;
    if (!where.empty()) one += " at " + where;
    if (!user.empty()) one += ": " + user;
    if (one.empty()) continue;
    if (!out.empty()) out += "; ";
    out += one;
  }
  return out;
}

}  // namespace

MllpDestination::MllpDestination(MllpDestinationConfig config) : config_(std::move(config)) {}

core::DeliveryResult MllpDestination::send(const core::DeliveryRequest& request) {
  auto message = hl7v2::Message::parse(request.payload);
  if (!message) {
    return core::DeliveryResult::fail("payload is not an HL7 v2 message: " +
                                      message.error().message + " at " + message.error().location);
  }
  std::lock_guard<std::mutex> lock(mutex_);
  return exchange(request.payload, message->controlId());
}

core::DeliveryResult MllpDestination::exchange(std::string_view payload,
                                               const std::string& controlId) {
  const std::string where = endpointKey();
  // After a timeout, garbled bytes or a wrong control id the stream no longer pairs answers with
  // messages: the connection is dropped and the next send opens a new one.
  auto drop = [this](std::string why) {
    connection_.close();
    return core::DeliveryResult::retry(std::move(why));
  };
  for (int round = 0; round < 2; ++round) {
    const bool reused = connection_.valid();
    if (!reused) {
      auto socket = connectTcp(config_.host, config_.port, config_.connectTimeoutMs);
      if (!socket) return core::DeliveryResult::retry(socket.error().message);
      connection_ = std::move(*socket);
    }
    if (auto w = writeAll(connection_, hl7v2::frame(payload), config_.ackTimeoutMs); !w) {
      connection_.close();
      if (reused)
        continue;  // the peer closed the kept connection meanwhile: once more on a new one
      return drop("sending to " + where + ": " + w.error().message);
    }
    hl7v2::MllpDeframer deframer(config_.maxAckBytes);
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(config_.ackTimeoutMs);
    std::optional<std::string> ackBytes;
    while (!ackBytes) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                            deadline - std::chrono::steady_clock::now())
                            .count();
      if (left <= 0)
        return drop("no ACK from " + where + " within " + std::to_string(config_.ackTimeoutMs) +
                    " ms");
      auto bytes = readSome(connection_, 64 * 1024, static_cast<int>(left));
      if (!bytes) {
        if (bytes.error().code == ErrorCode::kTimeout) {
          return drop("no ACK from " + where + " within " + std::to_string(config_.ackTimeoutMs) +
                      " ms");
        }
        return drop("reading the ACK from " + where + ": " + bytes.error().message);
      }
      if (bytes->empty()) {
        connection_.close();
        // A kept connection the peer had closed: the message may not have been read; send again
        // once on a fresh connection (the peer deduplicates by MSH-10 if it did read it).
        if (reused && round == 0 && deframer.bytesSeen() == 0) break;
        return drop(where + " closed the connection without an ACK");
      }
      deframer.feed(*bytes);
      if (auto item = deframer.next()) {
        if (!item->has_value())
          return drop("garbled ACK from " + where + ": " + item->error().message);
        ackBytes = std::move(**item);
      }
    }
    if (!ackBytes) continue;
    auto ack = hl7v2::Message::parse(*ackBytes);
    if (!ack) return drop("garbled ACK from " + where + ": " + ack.error().message);
    const std::string code = ack->get("MSA-1").value_or("");
    const std::string acked = ack->get("MSA-2").value_or("");
    if (ack->count("MSA") == 0 || code.empty()) {
      return drop("garbled ACK from " + where + ": no MSA-1; ACK: " + printable(*ackBytes));
    }
    if (config_.checkControlId && acked != controlId) {
      return drop("ACK from " + where + " names control id " + acked + " instead of " + controlId +
                  "; ACK: " + printable(*ackBytes));
    }
    std::string summary = "MSA-1 " + code + " MSA-2 " + acked;
    const std::string errors = errText(*ack);
    if (!errors.empty()) summary += "; ERR " + errors;
    if (std::string text = ack->get("MSA-3").value_or(""); !text.empty())
      summary += "; MSA-3 " + text;
    summary += "; ACK: " + printable(*ackBytes);
    if (code == "AA" || code == "CA") {
      core::DeliveryResult r = core::DeliveryResult::ok(std::move(summary));
      r.externalId = acked;
      return r;
    }
    if (code == "AE" || code == "CE") return core::DeliveryResult::retry(std::move(summary));
    if (code == "AR" || code == "CR") return core::DeliveryResult::fail(std::move(summary));
    return core::DeliveryResult::retry("unknown MSA-1 in ACK from " + where + ": " + summary);
  }
  return core::DeliveryResult::retry(where + " closed the connection without an ACK");
}

Result<std::unique_ptr<core::Destination>> MllpDestination::create(core::ConfigReader& config,
                                                                   const core::ConnectorContext&) {
  MllpDestinationConfig c;
  c.host = config.requiredString("host", "host name or address of the MLLP receiver");
  c.port = static_cast<int>(config.integer("port", 0, 1, 65535, "TCP port of the MLLP receiver"));
  if (c.port == 0) config.invalid("port", "a TCP port (1 to 65535)");
  c.connectTimeoutMs =
      static_cast<int>(config.integer("connect_timeout_ms", 5000, 1, 600000, "connection timeout"));
  c.ackTimeoutMs = static_cast<int>(
      config.integer("ack_timeout_ms", 30000, 1, 3600000, "longest wait for the ACK; then Retry"));
  c.maxAckBytes = static_cast<std::size_t>(
      config.integer("max_ack_bytes", 1 << 20, 64, 64 << 20, "largest ACK read"));
  c.checkControlId =
      config.boolean("check_control_id", true, "require MSA-2 to equal the sent MSH-10");
  if (auto r = config.finish(); !r) return std::unexpected(r.error());
  return std::unique_ptr<core::Destination>(std::make_unique<MllpDestination>(std::move(c)));
}

}  // namespace switchboard::channels::mllp
