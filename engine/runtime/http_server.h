// The engine's HTTP/1.1 listener: a few event-driven I/O threads (epoll, non-blocking sockets)
// parse requests with HttpRequestParser, ask the router for the path's body limit before reading
// a body, and hand complete requests to the router. Routers answer either asynchronously
// (handleAsync: the completion may run on any thread, e.g. after a group commit) or by blocking
// (handle(), run on a small worker pool). Responses go back in request order on each connection
// (pipelining), with keep-alive, Expect: 100-continue, chunked bodies, idle and header timeouts
// and a connection limit.
// Thread-safety: start() and stop() from one controlling thread. Router methods are called from
// the I/O threads (bodyLimit, handleAsync) and the worker pool (handle, rejectedBeforeBody)
// concurrently. An HttpCompletion may be called from any thread, exactly once.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "engine/core/http_types.h"
#include "engine/runtime/http_parser.h"

namespace switchboard::runtime {

// Receives the answer to one request. Cheap to copy; call it exactly once, from any thread.
using HttpCompletion = std::function<void(core::HttpResponse)>;

class HttpRouter {
 public:
  virtual ~HttpRouter() = default;
  // Largest body accepted at `path`, or nullopt when nothing is served there (404). Called on an
  // I/O thread: must not block.
  virtual std::optional<std::size_t> bodyLimit(const std::string& path) const = 0;
  // Answers a request whose body is within the limit. May block (runs on the worker pool).
  virtual core::HttpResponse handle(const core::HttpRequest& request) = 0;
  // Non-blocking answer, called on an I/O thread first. Returns false to leave the request to
  // handle() on the worker pool (then `request` and `done` are untouched); returns true when it
  // took the request (it may move from both) and will call `done` once, from any thread.
  virtual bool handleAsync(core::HttpRequest& request, HttpCompletion& done) {
    (void)request;
    (void)done;
    return false;
  }
  // Called (on the worker pool) when a body is over the limit or unreadable, so the router can
  // count and audit it; the 413 answer is sent after it returns.
  virtual void rejectedBeforeBody(const std::string& path, int status) = 0;
};

struct HttpServerOptions {
  std::string bind = "0.0.0.0";
  int port = 0;                 // 0 picks a free port; see HttpServer::port()
  int ioThreads = 0;            // event loops; 0: one per core, at most 2
  int workerThreads = 8;        // blocking handle() calls at once
  int workerQueue = 512;        // blocking requests waiting for a worker; beyond: 503
  int maxConnections = 10000;   // beyond: 503 and close
  int maxPipelined = 32;        // requests of one connection in progress; beyond: reading pauses
  int idleTimeoutMs = 15000;    // keep-alive connection without a request in progress
  int headerTimeoutMs = 30000;  // a started request whose head or body stalls this long: 408
  int drainTimeoutMs = 10000;   // stop(): longest wait for in-flight requests
  HttpParserLimits limits;
};

// A scope on a thread that completes many requests at once (the intake committer): completions
// inside it wake each I/O thread once, when the scope ends, instead of once per request.
class HttpCompletionBatch {
 public:
  HttpCompletionBatch();
  ~HttpCompletionBatch();
  HttpCompletionBatch(const HttpCompletionBatch&) = delete;
  HttpCompletionBatch& operator=(const HttpCompletionBatch&) = delete;

 private:
  bool owner_;
};

class HttpServer {
 public:
  HttpServer(HttpRouter& router, HttpServerOptions options);
  ~HttpServer();
  // Binds and starts the I/O threads; throws on a bind failure. The port is then port().
  void start();
  // Stops accepting, stops reading new requests, answers the requests in progress (up to
  // drainTimeoutMs), closes every connection and joins the threads.
  void stop();
  int port() const;
  // Runs `work` on the worker pool (blocking work started from a non-blocking path). False when
  // the pool's queue is full or the server is stopped.
  bool runBlocking(std::function<void()> work);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace switchboard::runtime
