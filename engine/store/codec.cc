#include "engine/store/codec.h"

#include <array>
#include <cstdint>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "engine/store/store.h"

namespace switchboard::store {
namespace {

// Length of the well-formed UTF-8 sequence starting at s[i], or 0 when it is malformed or NUL.
std::size_t validSequence(std::string_view s, std::size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 == 0) return 0;
  if (b0 < 0x80) return 1;
  auto cont = [&](std::size_t k) {
    return i + k < s.size() && (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
  };
  if (b0 >= 0xC2 && b0 <= 0xDF) return cont(1) ? 2 : 0;
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    const auto b1 = static_cast<unsigned char>(s[i + 1]);
    if (b0 == 0xE0 && b1 < 0xA0) return 0;  // overlong
    if (b0 == 0xED && b1 >= 0xA0) return 0;  // surrogate
    return 3;
  }
  if (b0 >= 0xF0 && b0 <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    const auto b1 = static_cast<unsigned char>(s[i + 1]);
    if (b0 == 0xF0 && b1 < 0x90) return 0;  // overlong
    if (b0 == 0xF4 && b1 >= 0x90) return 0;  // beyond U+10FFFF
    return 4;
  }
  return 0;
}

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

}  // namespace

bool isStorableText(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto n = validSequence(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string base64Encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const std::uint32_t v = (static_cast<unsigned char>(bytes[i]) << 16) |
                            (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                            static_cast<unsigned char>(bytes[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i < bytes.size()) {
    std::uint32_t v = static_cast<unsigned char>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) v |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

Result<std::string> base64Decode(std::string_view text) {
  static const std::array<int, 256> table = [] {
    std::array<int, 256> t{};
    t.fill(-1);
    for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(kAlphabet[i])] = i;
    return t;
  }();
  if (text.size() % 4 != 0) return fail(ErrorCode::kStructure, "stored base64 body has a bad length");
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = text[i + k];
      if (c == '=' && i + 4 == text.size() && k >= 2) {
        v[k] = 0;
        ++pad;
        continue;
      }
      if (pad > 0) return fail(ErrorCode::kStructure, "stored base64 body is malformed");
      v[k] = table[static_cast<unsigned char>(c)];
      if (v[k] < 0) return fail(ErrorCode::kStructure, "stored base64 body is malformed");
    }
    const std::uint32_t w = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
    out += static_cast<char>((w >> 16) & 0xFF);
    if (pad < 2) out += static_cast<char>((w >> 8) & 0xFF);
    if (pad < 1) out += static_cast<char>(w & 0xFF);
  }
  return out;
}

EncodedBody encodeBody(std::string_view body) {
  if (isStorableText(body)) return {std::string(body), ""};
  return {base64Encode(body), "base64"};
}

Result<std::string> decodeBody(std::string text, const std::string& encoding) {
  if (encoding.empty()) return text;
  if (encoding == "base64") return base64Decode(text);
  return fail(ErrorCode::kNotSupported, "unknown stored body encoding '" + sanitizeText(encoding) + "'");
}

std::string sanitizeText(std::string_view s) {
  if (isStorableText(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 8);
  for (std::size_t i = 0; i < s.size();) {
    const auto n = validSequence(s, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

std::string encodeMetadata(const core::Metadata& metadata) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  w.StartArray();
  for (const auto& [k, v] : metadata) {
    const auto key = sanitizeText(k);
    const auto value = sanitizeText(v);
    w.StartArray();
    w.String(key.data(), static_cast<rapidjson::SizeType>(key.size()));
    w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
    w.EndArray();
  }
  w.EndArray();
  return {buffer.GetString(), buffer.GetSize()};
}

core::Metadata decodeMetadata(std::string_view json) {
  core::Metadata out;
  rapidjson::Document doc;
  doc.Parse(json.data(), json.size());
  if (doc.HasParseError() || !doc.IsArray()) return out;
  for (const auto& pair : doc.GetArray()) {
    if (!pair.IsArray() || pair.Size() != 2 || !pair[0].IsString() || !pair[1].IsString()) continue;
    out.emplace_back(std::string(pair[0].GetString(), pair[0].GetStringLength()),
                     std::string(pair[1].GetString(), pair[1].GetStringLength()));
  }
  return out;
}

namespace {
void keepAsStored(std::string& s) {
  if (!isStorableText(s)) s = sanitizeText(s);
}
}  // namespace

core::StoredMessage storedForm(NewMessage&& row, std::int64_t id) {
  core::StoredMessage m;
  m.id = id;
  m.channelId = std::move(row.channelId);
  m.idempotencyKey = std::move(row.idempotencyKey);
  keepAsStored(m.idempotencyKey);
  m.receivedAtMs = row.receivedAtMs;
  m.contentType = std::move(row.contentType);
  keepAsStored(m.contentType);
  m.body = std::move(row.body);
  m.metadata = std::move(row.metadata);
  for (auto& [k, v] : m.metadata) {
    keepAsStored(k);
    keepAsStored(v);
  }
  m.status = "received";
  return m;
}

DeliveryRecord storedForm(const NewDelivery& d, std::int64_t id, const core::StoredMessage& message, Millis nowMs) {
  DeliveryRecord r;
  r.id = id;
  r.messageId = message.id;
  r.channelId = message.channelId;
  r.destination = d.destination;
  r.status = "pending";
  r.createdAtMs = nowMs;
  r.nextAttemptAtMs = d.nextAttemptAtMs;
  r.payload = d.payload;  // stored encoded (encodeBody), loaded back byte for byte
  r.contentType = d.contentType;
  keepAsStored(r.contentType);
  r.metadata = message.metadata;  // the message's, as stored (the pipeline does not change them)
  r.after = d.after;
  return r;
}

}  // namespace switchboard::store
