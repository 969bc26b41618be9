// A lean HTTP/1.1 client for plain http:// peers, used on the delivery path instead of Poco's
// HTTPClientSession (docs/http-client.md): a request leaves in one sendmsg (head and body), the
// response is read with large recv calls into one buffer and parsed in place (status line,
// headers, Content-Length or chunked body, Connection: close and HTTP/1.0 semantics).
// Kept-alive connections are pooled per endpoint with ClientPool's rules: one goes back only after
// a complete exchange whose response allows keep-alive, and one idle longer than maxIdle is closed
// instead of re-used. exchangeMany() runs several exchanges at once over up to maxConnections
// connections per endpoint with non-blocking sockets and poll(), one request in flight per
// connection (no pipelining: a POST is not safe to repeat at every peer).
// Thread-safety: every method may be called from any thread at any time; each call owns the
// connections it uses until it hands them back.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/error.h"
#include "engine/core/http_types.h"

namespace switchboard::channels {

// A response. Header names keep the server's spelling.
struct HttpReply {
  int status = 0;
  std::string reason;
  std::vector<core::HttpHeader> headers;
  std::string body;                                        // at most the exchange's maxBody bytes
  const std::string* header(std::string_view name) const;  // first of that name, case-insensitive
};

// One request. The views must stay valid for the call. Host and Content-Length are written by the
// client (a header of either name in `headers` is left out); Content-Length is sent for POST and
// PUT and whenever there is a body.
struct ClientRequest {
  std::string_view method = "POST";
  std::string_view url;  // http://host[:port][/path][?query]
  std::span<const core::HttpHeader> headers;
  std::string_view body;
};

// The outcome of one exchange of exchangeMany().
struct ClientExchange {
  Result<HttpReply> reply;
  std::chrono::steady_clock::duration elapsed{};  // from taking a connection to the last byte
};

class HttpClient {
 public:
  // maxIdlePerEndpoint covers several delivery workers, each with up to 8 connections at once
  // (4 x 8 shipped): a smaller pool would close connections after every pass and open new ones.
  explicit HttpClient(std::chrono::milliseconds maxIdle = std::chrono::milliseconds(2000),
                      std::size_t maxIdlePerEndpoint = 32);
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;
  ~HttpClient();  // closes the idle connections

  // One exchange. A connection failure, a reset or a peer that closes before its status line is
  // an error with code kTransient; no progress for `timeout` (connecting, sending or waiting for
  // bytes) is kTimeout; a URL that is not plain http:// is kNotSupported. Any HTTP status is a
  // successful exchange. A body longer than maxBody is cut there (and its connection closed).
  Result<HttpReply> exchange(const ClientRequest& request, std::chrono::milliseconds timeout,
                             std::size_t maxBody);

  // Every request, concurrently: out[i] answers requests[i] (out.size() == requests.size()).
  // Requests to one endpoint share up to maxConnections connections, each carrying one request at
  // a time; the errors and timeouts of exchange() are reported per request, so one peer that
  // never answers fails its own requests only.
  void exchangeMany(std::span<const ClientRequest> requests, std::span<ClientExchange> out,
                    std::chrono::milliseconds timeout, std::size_t maxBody,
                    std::size_t maxConnections = 8);

  // Idle connections held now (for tests and metrics).
  std::size_t idle() const;

 private:
  struct Idle {
    int fd;
    std::chrono::steady_clock::time_point since;
  };
  friend class ExchangeRun;
  // Up to `n` kept connections to `endpoint` that still look open, appended to `out`: all checked
  // with one poll() (a connection the server closed, or wrote to unasked, is readable), instead
  // of a peek each.
  void takeIdle(const std::string& endpoint, std::size_t n, std::vector<int>& out);
  void giveBack(const std::string& endpoint, int fd);

  const std::chrono::milliseconds maxIdle_;
  const std::size_t maxIdlePerEndpoint_;
  mutable std::mutex mutex_;
  std::map<std::string, std::vector<Idle>, std::less<>> idle_;
};

// Whether `url` is one HttpClient serves: http://, a host, no user info.
bool isPlainHttpUrl(std::string_view url);

}  // namespace switchboard::channels
