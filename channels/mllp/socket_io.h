// Thin POSIX socket helpers for the MLLP connectors: listen, connect with a timeout, write all
// bytes, read with a timeout. Errors come back as Result values; nothing throws.
// Thread-safety: functions are reentrant; a Socket is owned by one thread at a time.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "engine/core/error.h"

namespace switchboard::channels::mllp {

// An owned file descriptor, closed on destruction.
class Socket {
 public:
  Socket() = default;
  explicit Socket(int fd) : fd_(fd) {}
  Socket(Socket&& o) noexcept : fd_(o.release()) {}
  Socket& operator=(Socket&& o) noexcept;
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket() { close(); }

  int fd() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void close();
  // shutdown(SHUT_RDWR): wakes a thread blocked on this socket; the fd stays open.
  void shutdownBoth();

 private:
  int fd_ = -1;
};

// Binds and listens on host:port (IPv4 or IPv6 numeric address or a host name; port 0 picks a
// free port). Returns the socket; boundPort() tells the port.
Result<Socket> listenTcp(const std::string& host, int port, int backlog = 64);
int boundPort(const Socket& socket);

// Connects to host:port within timeoutMs. kTransient (refused, unreachable) or kTimeout.
Result<Socket> connectTcp(const std::string& host, int port, int timeoutMs);

// Writes every byte (MSG_NOSIGNAL) within timeoutMs overall.
Result<void> writeAll(const Socket& socket, std::string_view bytes, int timeoutMs);

// Reads what is available (at most `max` bytes) waiting up to timeoutMs (< 0: no limit).
// Returns the bytes; an empty string means the peer closed the connection. kTimeout when
// nothing came in time; kTransient on a socket error.
Result<std::string> readSome(const Socket& socket, std::size_t max, int timeoutMs);

// "host:port" of the peer, for logs (no PHI).
std::string peerName(const Socket& socket);

}  // namespace switchboard::channels::mllp
