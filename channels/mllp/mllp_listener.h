// A TCP listener speaking MLLP: one thread accepts, one thread per connection deframes the byte
// stream (hl7v2::MllpDeframer), hands each complete message to an MllpHandler and writes back the
// framed answer before reading the next one (original-mode ACKs, one message at a time).
// Thread-safety: the handler is called concurrently from connection threads; setHandler() and
// stop() may be called from any thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "channels/mllp/socket_io.h"
#include "engine/core/error.h"

namespace switchboard::channels::mllp {

class MllpHandler {
 public:
  virtual ~MllpHandler() = default;
  // A complete message (framing removed) from `peer` ("host:port"); returns the answer to frame
  // and send back (an ACK), or "" to send nothing.
  virtual std::string onMessage(std::string_view message, const std::string& peer) = 0;
  // A frame the deframer dropped (oversized, broken end bytes, cut by a new start byte); returns
  // the answer to send, or "".
  virtual std::string onFrameError(const Error& error, const std::string& peer) = 0;
};

struct ListenerOptions {
  std::string host = "127.0.0.1";
  int port = 0;
  std::size_t maxMessageBytes = 1 << 20;
  bool allowLineBreaksBetweenFrames = false;
  int maxConnections = 32;  // further connections are closed at once
  int idleTimeoutMs = 0;    // close a connection silent this long; 0: never
};

class MllpListener {
 public:
  // Binds and starts accepting. kTransient when the address cannot be bound.
  static Result<std::unique_ptr<MllpListener>> start(ListenerOptions options,
                                                     std::shared_ptr<MllpHandler> handler);
  ~MllpListener();

  int port() const { return port_; }
  const ListenerOptions& options() const { return options_; }
  // The handler for messages read from now on (a reloaded channel takes over its listener).
  void setHandler(std::shared_ptr<MllpHandler> handler);
  // Stops accepting, closes every connection (a message being handled is answered first when
  // the handler returns; its answer may not reach a closed peer) and joins the threads.
  void stop();
  int openConnections() const { return open_.load(); }

 private:
  struct Connection {
    Socket socket;
    std::thread thread;
    std::atomic<bool> done{false};
  };
  MllpListener(ListenerOptions options, Socket listening, std::shared_ptr<MllpHandler> handler);
  void acceptLoop();
  void serve(Connection& connection);
  void reapFinished();
  std::shared_ptr<MllpHandler> handler() const;

  ListenerOptions options_;
  Socket listening_;
  int port_ = 0;
  int wakeFd_ = -1;  // eventfd: stop() wakes the accept loop
  mutable std::mutex mutex_;
  std::shared_ptr<MllpHandler> handler_;                // guarded by mutex_
  std::list<std::unique_ptr<Connection>> connections_;  // guarded by mutex_
  std::atomic<bool> stopping_{false};
  std::atomic<int> open_{0};
  std::thread acceptThread_;
  std::once_flag stopOnce_;
};

}  // namespace switchboard::channels::mllp
