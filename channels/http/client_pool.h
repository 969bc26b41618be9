// Idle HTTP(S) client connections kept per endpoint for re-use (HTTP/1.1 keep-alive), so a
// destination does not pay a TCP (and TLS) handshake for every delivery. A connection goes back to
// the pool only after a complete exchange whose response allows keep-alive and whose body was read
// to its end; one idle longer than maxIdle is closed instead of re-used, which keeps below the
// idle timeouts servers commonly apply (Node 5 s, Apache 5 s, nginx 75 s), so a request rarely
// meets a connection the server has just closed. When it does, the send fails like any
// connection error and the delivery runner retries it.
// Thread-safety: acquire() and the leases it returns may be used from any thread; one lease (and
// its session) belongs to one thread at a time.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/URI.h>

namespace switchboard::channels {

class ClientPool {
 public:
  explicit ClientPool(std::chrono::milliseconds maxIdle = std::chrono::milliseconds(2000),
                      std::size_t maxIdlePerEndpoint = 8);
  ClientPool(const ClientPool&) = delete;
  ClientPool& operator=(const ClientPool&) = delete;

  class Lease {
   public:
    Lease(Lease&&) = default;
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    Poco::Net::HTTPClientSession& operator*() { return *session_; }
    Poco::Net::HTTPClientSession* operator->() { return session_.get(); }
    // Whether the connection served an earlier exchange.
    bool reused() const { return reused_; }
    // Hands the connection back for re-use: call after the response body was read to its end and
    // only if the response allows keep-alive. Otherwise the connection is closed on destruction.
    void keep() { keep_ = true; }

   private:
    friend class ClientPool;
    Lease(ClientPool& pool, std::string key, std::unique_ptr<Poco::Net::HTTPClientSession> session, bool reused)
        : pool_(&pool), key_(std::move(key)), session_(std::move(session)), reused_(reused) {}
    ClientPool* pool_;
    std::string key_;
    std::unique_ptr<Poco::Net::HTTPClientSession> session_;
    bool reused_ = false;
    bool keep_ = false;
  };

  // A connection to the scheme, host and port of `uri` (https uses `tls`, which must be set),
  // with `timeout` for connecting, sending and receiving.
  Lease acquire(const Poco::URI& uri, const Poco::Net::Context::Ptr& tls, std::chrono::milliseconds timeout);

  // Idle connections held now (for tests and metrics).
  std::size_t idle() const;

 private:
  struct Idle {
    std::unique_ptr<Poco::Net::HTTPClientSession> session;
    std::chrono::steady_clock::time_point since;
  };
  void giveBack(std::string key, std::unique_ptr<Poco::Net::HTTPClientSession> session);

  const std::chrono::milliseconds maxIdle_;
  const std::size_t maxIdlePerEndpoint_;
  mutable std::mutex mutex_;
  std::map<std::string, std::vector<Idle>> idle_;
};

// Reads the rest of `in` into `body` while it stays within `max` bytes. True when the stream
// ended (the whole body was read), false when it was cut at `max`.
bool readBody(std::istream& in, std::string& body, std::size_t max);

}  // namespace switchboard::channels
