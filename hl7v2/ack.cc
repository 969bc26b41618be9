// ACK building: see ack.h. Thread-safety: pure functions.
#include "hl7v2/ack.h"

namespace switchboard::hl7v2 {

std::string_view ackCodeText(AckCode code) {
  switch (code) {
    case AckCode::kAA:
      return "AA";
    case AckCode::kAE:
      return "AE";
    case AckCode::kAR:
      return "AR";
    case AckCode::kCA:
      return "CA";
    case AckCode::kCE:
      return "CE";
    case AckCode::kCR:
      return "CR";
  }
  return "AR";
}

std::string_view errorCodeText(int code) {
  switch (code) {
    case 0:
      return "Message accepted";
    case 100:
      return "Segment sequence error";
    case 101:
      return "Required field missing";
    case 102:
      return "Data type error";
    case 103:
      return "Table value not found";
    case 200:
      return "Unsupported message type";
    case 201:
      return "Unsupported event code";
    case 202:
      return "Unsupported processing id";
    case 203:
      return "Unsupported version id";
    case 204:
      return "Unknown key identifier";
    case 205:
      return "Duplicate key identifier";
    case 206:
      return "Application record locked";
    case 207:
      return "Application internal error";
    default:
      return "";
  }
}

namespace {

Result<void> copyRaw(const Message& from, std::string_view fromPath, Message& to,
                     std::string_view toPath) {
  auto raw = from.getRaw(fromPath);
  if (!raw) return std::unexpected(raw.error());
  if (raw->empty()) return {};
  return to.setRaw(toPath, *raw);
}

}  // namespace

Result<Message> buildAck(const Message& in, const AckOptions& o) {
  Message ack = Message::create(in.delimiters());
  // MSH-2 exactly as received (create() writes the declared characters in standard order,
  // which is the same text; copying keeps any oddity).
  ack.segments()[0].fields[1] = in.segments()[0].fields[1];
  const std::pair<const char*, const char*> swaps[] = {
      {"MSH-5", "MSH-3"}, {"MSH-6", "MSH-4"}, {"MSH-3", "MSH-5"}, {"MSH-4", "MSH-6"}};
  for (const auto& [from, to] : swaps) {
    if (auto r = copyRaw(in, from, ack, to); !r) return std::unexpected(r.error());
  }
  Result<void> r = ack.set("MSH-7", o.timestamp);
  if (r) r = ack.set("MSH-9.1", "ACK");
  if (r) r = ack.set("MSH-9.2", in.triggerEvent());
  if (r) r = ack.set("MSH-9.3", "ACK");
  if (r) r = ack.set("MSH-10", o.controlId);
  if (r) r = copyRaw(in, "MSH-11", ack, "MSH-11");
  if (r) r = copyRaw(in, "MSH-12", ack, "MSH-12");
  if (r) r = ack.set("MSA-1", ackCodeText(o.code));
  if (r) r = copyRaw(in, "MSH-10", ack, "MSA-2");
  if (r && !o.textMessage.empty()) r = ack.set("MSA-3", o.textMessage);
  if (!r) return std::unexpected(r.error());

  for (size_t i = 0; i < o.errors.size(); ++i) {
    const AckError& e = o.errors[i];
    if (e.severity != 'E' && e.severity != 'W' && e.severity != 'I') {
      return fail(ErrorCode::kValue, "ERR-4 severity must be E, W or I (table 0516)",
                  "ERR[" + std::to_string(i + 1) + "]-4");
    }
    const std::string err = "ERR[" + std::to_string(i + 1) + "]";
    Result<void> w = ack.set(err + "-1", "");  // appends this ERR segment
    const ErrorLocation& l = e.location;
    if (w && !l.segment.empty()) {
      w = ack.set(err + "-2.1", l.segment);
      const int numbers[] = {l.sequence, l.field, l.repetition, l.component, l.subcomponent};
      int last = -1;
      for (int k = 0; k < 5; ++k) {
        if (numbers[k] != 0) last = k;
      }
      for (int k = 0; w && k <= last; ++k) {
        w = ack.set(err + "-2." + std::to_string(k + 2),
                    numbers[k] == 0 ? std::string() : std::to_string(numbers[k]));
      }
    }
    if (w) w = ack.set(err + "-3.1", std::to_string(e.code));
    if (w) w = ack.set(err + "-3.2", e.codeText.empty() ? errorCodeText(e.code) : e.codeText);
    if (w) w = ack.set(err + "-3.3", "HL70357");
    if (w) w = ack.set(err + "-4", std::string(1, e.severity));
    if (w && !e.userMessage.empty()) w = ack.set(err + "-8", e.userMessage);
    if (!w) return std::unexpected(w.error());
  }
  ack.setEndsWithTerminator(true);
  return ack;
}

Result<Message> buildAckForBytes(std::string_view raw, const AckOptions& options) {
  std::string_view first = raw.substr(0, raw.find('\r'));
  if (auto msh = Message::parse(first)) return buildAck(*msh, options);
  return buildAck(Message::create(), options);
}

}  // namespace switchboard::hl7v2
