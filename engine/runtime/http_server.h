// The engine's HTTP listener (Poco::Net::HTTPServer): converts requests to core::HttpRequest,
// enforces the body limit the router names for the path before reading the body, and writes the
// router's core::HttpResponse.
// Thread-safety: the router is called concurrently from the server's thread pool.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "engine/core/http_types.h"

namespace switchboard::runtime {

class HttpRouter {
 public:
  virtual ~HttpRouter() = default;
  // Largest body accepted at `path`, or nullopt when nothing is served there (404).
  virtual std::optional<std::size_t> bodyLimit(const std::string& path) const = 0;
  // Answers a request whose body is within the limit.
  virtual core::HttpResponse handle(const core::HttpRequest& request) = 0;
  // Called when a body is over the limit or unreadable, so the router can count and audit it.
  virtual void rejectedBeforeBody(const std::string& path, int status) = 0;
};

class HttpServer {
 public:
  HttpServer(HttpRouter& router, std::string bind, int port, int threads, int queue);
  ~HttpServer();
  // Binds and starts accepting; the chosen port is available through port().
  void start();
  // Stops accepting new connections and lets requests in progress finish.
  void stop();
  int port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace switchboard::runtime
