#include "engine/runtime/http_parser.h"

#include <limits>

namespace switchboard::runtime {

namespace {

bool isTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

bool isToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!isTokenChar(c)) return false;
  }
  return true;
}

std::string_view stripCr(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

// Decimal digits only; saturates at UINT64_MAX. nullopt when not a number.
std::optional<std::uint64_t> parseLength(std::string_view s) {
  if (s.empty()) return std::nullopt;
  std::uint64_t v = 0;
  constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    unsigned d = static_cast<unsigned>(c - '0');
    v = v > (kMax - d) / 10 ? kMax : v * 10 + d;
  }
  return v;
}

}  // namespace

HttpRequestParser::HttpRequestParser(HttpParserLimits limits) : limits_(limits) {}

void HttpRequestParser::reset() {
  state_ = State::kStart;
  scanned_ = 0;
  head_ = HttpRequestHead{};
  body_.clear();
  bodyLimit_ = 0;
  remaining_ = 0;
  trailerBytes_ = 0;
}

HttpRequestParser::Status HttpRequestParser::fail(int status, std::string message) {
  state_ = State::kError;
  errorStatus_ = status;
  errorMessage_ = std::move(message);
  return Status::kError;
}

void HttpRequestParser::acceptBody(std::size_t limit) {
  if (state_ != State::kAwaitBody) return;
  bodyLimit_ = limit;
  if (head_.chunked) {
    state_ = State::kChunkSize;
  } else if (head_.contentLength && *head_.contentLength > 0) {
    remaining_ = *head_.contentLength;
    state_ = State::kLength;
  } else {
    state_ = State::kDone;
  }
}

HttpRequestParser::Status HttpRequestParser::parse(std::string_view input, std::size_t& consumed) {
  consumed = 0;
  switch (state_) {
    case State::kError:
      return Status::kError;
    case State::kAwaitBody:
      return Status::kHead;
    case State::kDone:
      return Status::kComplete;
    case State::kStart:
      break;
    default:
      return parseBody(input, consumed);
  }
  // Blank lines before a request line are ignored (RFC 9112 section 2.2).
  if (scanned_ == 0) {
    while (consumed < input.size()) {
      if (input[consumed] == '\n') {
        ++consumed;
      } else if (input[consumed] == '\r' && consumed + 1 < input.size() &&
                 input[consumed + 1] == '\n') {
        consumed += 2;
      } else {
        break;
      }
    }
    input.remove_prefix(consumed);
  }
  for (;;) {
    std::size_t nl = input.find('\n', scanned_);
    if (nl == std::string_view::npos) {
      if (scanned_ == 0 && input.size() > limits_.maxRequestLine) {
        return fail(
            414, "request line longer than " + std::to_string(limits_.maxRequestLine) + " bytes");
      }
      if (input.size() > limits_.maxHeaderBytes) {
        return fail(431, "request headers longer than " + std::to_string(limits_.maxHeaderBytes) +
                             " bytes");
      }
      return Status::kNeedMore;
    }
    if (scanned_ == 0 && nl > limits_.maxRequestLine) {
      return fail(414,
                  "request line longer than " + std::to_string(limits_.maxRequestLine) + " bytes");
    }
    if (nl + 1 > limits_.maxHeaderBytes + 2) {
      return fail(
          431, "request headers longer than " + std::to_string(limits_.maxHeaderBytes) + " bytes");
    }
    std::string_view line = stripCr(input.substr(scanned_, nl - scanned_));
    if (line.empty() && scanned_ > 0) {
      Status s = parseHead(input.substr(0, scanned_));
      if (s == Status::kError) return s;
      consumed += nl + 1;
      scanned_ = 0;
      state_ = State::kAwaitBody;
      return Status::kHead;
    }
    scanned_ = nl + 1;
  }
}

HttpRequestParser::Status HttpRequestParser::parseHead(std::string_view head) {
  std::size_t nl = head.find('\n');
  std::string_view requestLine = stripCr(head.substr(0, nl));
  head.remove_prefix(nl + 1);

  std::size_t sp1 = requestLine.find(' ');
  std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : requestLine.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || requestLine.find(' ', sp2 + 1) != std::string_view::npos) {
    return fail(400, "malformed request line");
  }
  std::string_view method = requestLine.substr(0, sp1);
  std::string_view target = requestLine.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = requestLine.substr(sp2 + 1);
  if (!isToken(method)) return fail(400, "malformed request method");
  if (target.empty()) return fail(400, "empty request target");
  for (char c : target) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f)
      return fail(400, "malformed request target");
  }
  if (version.size() != 8 || !version.starts_with("HTTP/") || version[6] != '.' ||
      version[5] < '0' || version[5] > '9' || version[7] < '0' || version[7] > '9') {
    return fail(400, "malformed HTTP version");
  }
  if (version[5] != '1')
    return fail(505, "HTTP version " + std::string(version.substr(5)) + " is not supported");
  head_.method = std::string(method);
  head_.target = std::string(target);
  head_.minorVersion = version[7] - '0';

  std::optional<std::string_view> connection;
  bool transferEncoding = false;
  while (!head.empty()) {
    nl = head.find('\n');
    std::string_view line = stripCr(head.substr(0, nl));
    head.remove_prefix(nl == std::string_view::npos ? head.size() : nl + 1);
    if (line.front() == ' ' || line.front() == '\t')
      return fail(400, "folded header lines are not accepted");
    std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || !isToken(line.substr(0, colon))) {
      return fail(400, "malformed header line");
    }
    std::string_view name = line.substr(0, colon);
    std::string_view value = core::trimHeaderSpace(line.substr(colon + 1));
    for (char c : value) {
      if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) {
        return fail(400, "control character in header " + std::string(name));
      }
    }
    if (head_.headers.size() >= limits_.maxHeaders) {
      return fail(431, "more than " + std::to_string(limits_.maxHeaders) + " request headers");
    }
    if (core::equalsIgnoreCase(name, "Content-Length")) {
      std::optional<std::uint64_t> n = parseLength(value);
      if (!n) return fail(400, "malformed Content-Length");
      if (head_.contentLength && *head_.contentLength != *n)
        return fail(400, "conflicting Content-Length headers");
      head_.contentLength = n;
    } else if (core::equalsIgnoreCase(name, "Transfer-Encoding")) {
      if (transferEncoding || !core::equalsIgnoreCase(value, "chunked")) {
        return fail(501, "transfer coding " + std::string(value) + " is not supported");
      }
      transferEncoding = true;
      head_.chunked = true;
    } else if (core::equalsIgnoreCase(name, "Connection")) {
      connection = value;
    } else if (core::equalsIgnoreCase(name, "Expect")) {
      if (!core::equalsIgnoreCase(value, "100-continue"))
        return fail(417, "unsupported expectation");
      head_.expectContinue = head_.minorVersion >= 1;
    }
    head_.headers.push_back({std::string(name), std::string(value)});
  }
  if (head_.chunked && head_.contentLength)
    return fail(400, "both Content-Length and Transfer-Encoding");
  head_.keepAlive = head_.minorVersion >= 1;
  if (connection) {
    if (core::headerListHas(*connection, "close")) {
      head_.keepAlive = false;
    } else if (core::headerListHas(*connection, "keep-alive")) {
      head_.keepAlive = true;
    }
  }
  return Status::kHead;
}

HttpRequestParser::Status HttpRequestParser::parseBody(std::string_view input,
                                                       std::size_t& consumed) {
  auto tooLong = [&] {
    return fail(413, "body exceeds the limit of " + std::to_string(bodyLimit_) + " bytes");
  };
  for (;;) {
    std::string_view rest = input.substr(consumed);
    switch (state_) {
      case State::kLength:
      case State::kChunkData: {
        if (body_.size() + remaining_ > bodyLimit_ && state_ == State::kLength) return tooLong();
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, rest.size()));
        if (body_.size() + n > bodyLimit_) return tooLong();
        if (body_.empty() && state_ == State::kLength)
          body_.reserve(static_cast<std::size_t>(remaining_));
        body_.append(rest.data(), n);
        consumed += n;
        remaining_ -= n;
        if (remaining_ > 0) return Status::kNeedMore;
        if (state_ == State::kLength) {
          state_ = State::kDone;
          return Status::kComplete;
        }
        state_ = State::kChunkEnd;
        break;
      }
      case State::kChunkEnd: {
        if (rest.empty() || (rest[0] == '\r' && rest.size() < 2)) return Status::kNeedMore;
        if (rest.starts_with("\r\n")) {
          consumed += 2;
        } else if (rest[0] == '\n') {
          consumed += 1;
        } else {
          return fail(400, "malformed chunk: data longer than its size");
        }
        state_ = State::kChunkSize;
        break;
      }
      case State::kChunkSize: {
        std::size_t nl = rest.find('\n');
        if (nl == std::string_view::npos) {
          if (rest.size() > 1024) return fail(400, "malformed chunk size line");
          return Status::kNeedMore;
        }
        std::string_view line = stripCr(rest.substr(0, nl));
        std::string_view digits = core::trimHeaderSpace(line.substr(0, line.find(';')));
        if (digits.empty() || digits.size() > 15) return fail(400, "malformed chunk size");
        std::uint64_t size = 0;
        for (char c : digits) {
          int d = (c >= '0' && c <= '9')   ? c - '0'
                  : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                  : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                           : -1;
          if (d < 0) return fail(400, "malformed chunk size");
          size = size * 16 + static_cast<std::uint64_t>(d);
        }
        consumed += nl + 1;
        if (size == 0) {
          state_ = State::kTrailers;
        } else {
          if (body_.size() + size > bodyLimit_) return tooLong();
          remaining_ = size;
          state_ = State::kChunkData;
        }
        break;
      }
      case State::kTrailers: {
        std::size_t nl = rest.find('\n');
        if (nl == std::string_view::npos) {
          if (trailerBytes_ + rest.size() > limits_.maxHeaderBytes)
            return fail(431, "chunked trailers too long");
          return Status::kNeedMore;
        }
        trailerBytes_ += nl + 1;
        if (trailerBytes_ > limits_.maxHeaderBytes) return fail(431, "chunked trailers too long");
        consumed += nl + 1;
        if (stripCr(rest.substr(0, nl)).empty()) {
          state_ = State::kDone;
          return Status::kComplete;
        }
        break;  // trailer fields are read and dropped
      }
      case State::kDone:
        return Status::kComplete;
      default:
        return Status::kError;
    }
  }
}

}  // namespace switchboard::runtime
