// Incremental HTTP/1.1 request parser for the engine's event-driven server. Bytes arrive in pieces
// of any size; the parser first reports the complete head (so the server decides the body limit
// before reading a body byte), then the complete request. Request line, header block and header
// count are bounded, so a connection's memory is bounded by its limits.
// Thread-safety: one parser per connection, used by one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/http_types.h"

namespace switchboard::runtime {

struct HttpParserLimits {
  std::size_t maxRequestLine = 8192;   // longer: 414
  std::size_t maxHeaderBytes = 16384;  // request line + header lines; longer: 431
  std::size_t maxHeaders = 100;        // more header lines: 431
};

// The head of one request as received.
struct HttpRequestHead {
  std::string method;
  std::string target;    // request-target as sent (origin form, e.g. /in/a?x=1)
  int minorVersion = 1;  // HTTP/1.<minorVersion>
  std::vector<core::HttpHeader> headers;
  std::optional<std::uint64_t> contentLength;  // saturates at UINT64_MAX
  bool chunked = false;
  bool expectContinue = false;
  bool keepAlive = true;  // after the Connection header and the version's default
};

class HttpRequestParser {
 public:
  enum class Status {
    kNeedMore,  // everything given was consumed or kept; feed more bytes
    kHead,      // head() is ready; call acceptBody() before parsing on
    kComplete,  // head() and body() hold a whole request; call reset() before the next one
    kError,     // errorStatus() and errorMessage() say why; the connection cannot continue
  };

  explicit HttpRequestParser(HttpParserLimits limits = {});

  // Parses from the front of `input`, which holds the bytes not consumed by earlier calls plus
  // any new ones. Sets `consumed` to the bytes used up; the caller drops them before the next
  // call. While the head is incomplete nothing is consumed (the head is parsed in one piece).
  Status parse(std::string_view input, std::size_t& consumed);

  // After kHead: the body may hold at most `limit` bytes; a longer body is error 413.
  void acceptBody(std::size_t limit);
  // Ready for the next request on the same connection.
  void reset();

  // True while no byte of a request has arrived (between requests).
  bool idle() const { return state_ == State::kStart && scanned_ == 0; }
  // True while the head is still incomplete.
  bool inHead() const { return state_ == State::kStart; }

  const HttpRequestHead& head() const { return head_; }
  std::string& body() { return body_; }
  int errorStatus() const { return errorStatus_; }
  const std::string& errorMessage() const { return errorMessage_; }

 private:
  enum class State {
    kStart,
    kAwaitBody,
    kLength,
    kChunkSize,
    kChunkData,
    kChunkEnd,
    kTrailers,
    kDone,
    kError
  };
  Status fail(int status, std::string message);
  Status parseHead(std::string_view head);
  Status parseBody(std::string_view input, std::size_t& consumed);

  HttpParserLimits limits_;
  State state_ = State::kStart;
  std::size_t scanned_ = 0;  // head bytes already searched for the blank line
  HttpRequestHead head_;
  std::string body_;
  std::size_t bodyLimit_ = 0;
  std::uint64_t remaining_ = 0;  // body or chunk bytes still expected
  std::size_t trailerBytes_ = 0;
  int errorStatus_ = 0;
  std::string errorMessage_;
};

}  // namespace switchboard::runtime
