#include "tests/channels/http/raw_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <chrono>

namespace switchboard::testing {

using namespace std::chrono_literals;

// Sends all of `bytes`, or one byte per send (TCP_NODELAY, a pause between) when `slowly`.
void writeAll(int fd, std::string_view bytes, bool slowly) {
  if (slowly) {
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), slowly ? 1 : bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return;
    bytes.remove_prefix(static_cast<std::size_t>(n));
    if (slowly) std::this_thread::sleep_for(200us);
  }
}

// One request (head and Content-Length body) from `fd`, or nullopt once the client closed.
std::optional<std::string> readRequest(int fd, std::string& pending) {
  while (true) {
    const std::size_t head = pending.find("\r\n\r\n");
    if (head != std::string::npos) {
      std::size_t length = 0;
      std::string lower(pending.substr(0, head));
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (auto at = lower.find("content-length:"); at != std::string::npos)
        length = std::stoul(lower.substr(at + 15));
      if (pending.size() >= head + 4 + length) {
        std::string request = pending.substr(0, head + 4 + length);
        pending.erase(0, head + 4 + length);
        return request;
      }
    }
    char buffer[4096];
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) return std::nullopt;
    pending.append(buffer, static_cast<std::size_t>(n));
  }
}

std::string bodyOf(const std::string& request) {
  return request.substr(request.find("\r\n\r\n") + 4);
}

RawServer::RawServer(Serve serve) : serve_(std::move(serve)) {
  listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::listen(listener_, 64);
  socklen_t length = sizeof a;
  ::getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &length);
  port_ = ntohs(a.sin_port);
  acceptor_ = std::thread([this] {
    while (true) {
      const int fd = ::accept(listener_, nullptr, nullptr);
      if (fd < 0) return;
      std::lock_guard<std::mutex> lock(mutex_);
      fds_.push_back(fd);
      threads_.emplace_back([this, fd] {
        serve_(fd, *this);
        ::shutdown(fd, SHUT_RDWR);
        ++finished_;
      });
    }
  });
}

RawServer::~RawServer() {
  ::shutdown(listener_, SHUT_RDWR);
  acceptor_.join();
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    threads.swap(threads_);
  }
  for (auto& t : threads) t.join();
  for (int fd : fds_) ::close(fd);
  ::close(listener_);
}

std::string RawServer::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}

std::size_t RawServer::connections() {
  std::lock_guard<std::mutex> lock(mutex_);
  return fds_.size();
}

std::vector<std::string> RawServer::requests() {
  std::lock_guard<std::mutex> lock(mutex_);
  return requests_;
}

void RawServer::record(const std::string& request) {
  std::lock_guard<std::mutex> lock(mutex_);
  requests_.push_back(request);
}

// Serves every request on the connection with `respond(request)`, written at once.
RawServer::Serve answering(std::function<std::string(const std::string&)> respond, bool slowly) {
  return [respond = std::move(respond), slowly](int fd, RawServer& server) {
    std::string pending;
    while (auto request = readRequest(fd, pending)) {
      server.record(*request);
      writeAll(fd, respond(*request), slowly);
    }
  };
}

std::string okResponse(std::string_view body, std::string_view extra) {
  return "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
         std::string(extra) + "\r\n" + std::string(body);
}

}  // namespace switchboard::testing
