#include "channels/mllp/socket_io.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace switchboard::channels::mllp {
namespace {

std::string errnoText(int e) { return std::strerror(e); }

Result<addrinfo*> resolve(const std::string& host, int port, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  addrinfo* list = nullptr;
  const std::string service = std::to_string(port);
  int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &list);
  if (rc != 0 || list == nullptr) {
    return fail(ErrorCode::kTransient, "cannot resolve " + host + ": " + ::gai_strerror(rc));
  }
  return list;
}

long long nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Socket& Socket::operator=(Socket&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = o.release();
  }
  return *this;
}

void Socket::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void Socket::shutdownBoth() {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
}

Result<Socket> listenTcp(const std::string& host, int port, int backlog) {
  auto list = resolve(host, port, true);
  if (!list) return std::unexpected(list.error());
  std::string lastError = "no address";
  for (addrinfo* a = *list; a != nullptr; a = a->ai_next) {
    Socket s(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol));
    if (!s.valid()) {
      lastError = errnoText(errno);
      continue;
    }
    int one = 1;
    ::setsockopt(s.fd(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(s.fd(), a->ai_addr, a->ai_addrlen) != 0 || ::listen(s.fd(), backlog) != 0) {
      lastError = errnoText(errno);
      continue;
    }
    ::freeaddrinfo(*list);
    return s;
  }
  ::freeaddrinfo(*list);
  return fail(ErrorCode::kTransient,
              "cannot listen on " + host + ":" + std::to_string(port) + ": " + lastError);
}

int boundPort(const Socket& socket) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (::getsockname(socket.fd(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
  if (addr.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  if (addr.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
  return 0;
}

Result<Socket> connectTcp(const std::string& host, int port, int timeoutMs) {
  auto list = resolve(host, port, false);
  if (!list) return std::unexpected(list.error());
  Error last(ErrorCode::kTransient, "no address for " + host);
  for (addrinfo* a = *list; a != nullptr; a = a->ai_next) {
    Socket s(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol));
    if (!s.valid()) {
      last = Error(ErrorCode::kTransient, "socket: " + errnoText(errno));
      continue;
    }
    int rc = ::connect(s.fd(), a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno != EINPROGRESS) {
      last = Error(ErrorCode::kTransient,
                   "connect to " + host + ":" + std::to_string(port) + ": " + errnoText(errno));
      continue;
    }
    if (rc != 0) {
      pollfd p{s.fd(), POLLOUT, 0};
      int n = ::poll(&p, 1, timeoutMs);
      if (n == 0) {
        last =
            Error(ErrorCode::kTimeout, "connect to " + host + ":" + std::to_string(port) +
                                           " timed out after " + std::to_string(timeoutMs) + " ms");
        continue;
      }
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(s.fd(), SOL_SOCKET, SO_ERROR, &err, &len);
      if (n < 0 || err != 0) {
        last = Error(ErrorCode::kTransient, "connect to " + host + ":" + std::to_string(port) +
                                                ": " + errnoText(n < 0 ? errno : err));
        continue;
      }
    }
    int flags = ::fcntl(s.fd(), F_GETFL, 0);
    ::fcntl(s.fd(), F_SETFL, flags & ~O_NONBLOCK);
    int one = 1;
    ::setsockopt(s.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::freeaddrinfo(*list);
    return s;
  }
  ::freeaddrinfo(*list);
  return std::unexpected(last);
}

Result<void> writeAll(const Socket& socket, std::string_view bytes, int timeoutMs) {
  const long long deadline = nowMs() + timeoutMs;
  while (!bytes.empty()) {
    ssize_t n = ::send(socket.fd(), bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      bytes.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      long long left = deadline - nowMs();
      if (left <= 0) return fail(ErrorCode::kTimeout, "write timed out");
      pollfd p{socket.fd(), POLLOUT, 0};
      ::poll(&p, 1, static_cast<int>(left));
      continue;
    }
    return fail(ErrorCode::kTransient, "write failed: " + errnoText(errno));
  }
  return {};
}

Result<std::string> readSome(const Socket& socket, std::size_t max, int timeoutMs) {
  for (;;) {
    pollfd p{socket.fd(), POLLIN, 0};
    int n = ::poll(&p, 1, timeoutMs);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(ErrorCode::kTransient, "poll failed: " + errnoText(errno));
    if (n == 0)
      return fail(ErrorCode::kTimeout, "no data within " + std::to_string(timeoutMs) + " ms");
    std::string buffer(max, '\0');
    ssize_t got = ::recv(socket.fd(), buffer.data(), max, 0);
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (got < 0) return fail(ErrorCode::kTransient, "read failed: " + errnoText(errno));
    buffer.resize(static_cast<std::size_t>(got));
    return buffer;
  }
}

std::string peerName(const Socket& socket) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (::getpeername(socket.fd(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "?";
  char host[INET6_ADDRSTRLEN] = {0};
  int port = 0;
  if (addr.ss_family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&addr);
    ::inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    port = ntohs(a->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
    ::inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    port = ntohs(a->sin6_port);
  }
  return std::string(host) + ":" + std::to_string(port);
}

}  // namespace switchboard::channels::mllp
