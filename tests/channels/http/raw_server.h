// A byte-exact HTTP peer for client tests: a loopback listener that hands each accepted
// connection to the test's function on a thread of its own, plus helpers to read a request and
// write a response (at once, or one byte per TCP segment).
// Thread-safety: the serve function runs on one thread per connection; the accessors lock.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace switchboard::testing {

// Sends all of `bytes`, or one byte per send (TCP_NODELAY, a pause between) when `slowly`.
void writeAll(int fd, std::string_view bytes, bool slowly = false);
// One request (head and Content-Length body) from `fd`, bytes past it kept in `pending`; nullopt
// once the client closed.
std::optional<std::string> readRequest(int fd, std::string& pending);
// The body of a request readRequest() returned.
std::string bodyOf(const std::string& request);
// "HTTP/1.1 200 OK" with Content-Length, `extra` header lines ("Name: value\r\n") and `body`.
std::string okResponse(std::string_view body, std::string_view extra = {});

class RawServer {
 public:
  using Serve = std::function<void(int fd, RawServer& server)>;
  explicit RawServer(Serve serve);
  ~RawServer();  // stops accepting, shuts every connection down, joins
  RawServer(const RawServer&) = delete;
  RawServer& operator=(const RawServer&) = delete;

  std::string url(const std::string& path) const;  // http://127.0.0.1:<port><path>
  int port() const { return port_; }
  std::size_t connections();                          // accepted so far
  std::size_t finished() const { return finished_; }  // connections whose serve() returned
  std::vector<std::string> requests();                // recorded by record(), in order
  void record(const std::string& request);

 private:
  Serve serve_;
  int listener_ = -1;
  int port_ = 0;
  std::thread acceptor_;
  std::mutex mutex_;
  std::vector<int> fds_;
  std::vector<std::thread> threads_;
  std::vector<std::string> requests_;
  std::atomic<std::size_t> finished_{0};
};

// Serves every request of a connection with `respond(request)` (recorded first).
RawServer::Serve answering(std::function<std::string(const std::string&)> respond,
                           bool slowly = false);

}  // namespace switchboard::testing
