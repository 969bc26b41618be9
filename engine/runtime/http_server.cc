#include "engine/runtime/http_server.h"

#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/URI.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "engine/core/connector.h"
#include "engine/core/thread_name.h"

namespace switchboard::runtime {

namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr std::uint64_t kListenerId = 0;
constexpr std::uint64_t kWakeId = 1;
constexpr std::size_t kReadChunk = 64 * 1024;
constexpr std::size_t kDiscardLimit = 64 * 1024;  // body read and dropped on a 404 path
constexpr std::size_t kKeepCapacity = 64 * 1024;  // larger buffers are released when empty
constexpr auto kLinger = std::chrono::seconds(2);

core::HttpResponse problem(int status, ErrorCode code, std::string message) {
  core::HttpResponse r =
      core::HttpResponse::json(status, core::operationOutcomeJson(Error(code, std::move(message))));
  r.contentType = "application/fhir+json";
  return r;
}

ErrorCode codeForStatus(int status) {
  switch (status) {
    case 413:
    case 414:
    case 431:
      return ErrorCode::kTooLong;
    case 408:
      return ErrorCode::kTimeout;
    case 501:
    case 505:
    case 417:
      return ErrorCode::kNotSupported;
    default:
      return ErrorCode::kInvalid;
  }
}

bool safeHeaderText(const std::string& s) { return s.find_first_of("\r\n") == std::string::npos; }

// The response's bytes on the wire. The server owns framing: Content-Length and Connection.
std::string serialize(const core::HttpResponse& r, bool keepAlive, bool http10, bool headRequest) {
  std::string out;
  out.reserve(160 + r.body.size());
  out += "HTTP/1.1 ";
  out += std::to_string(r.status);
  out += ' ';
  out += Poco::Net::HTTPResponse::getReasonForStatus(
      static_cast<Poco::Net::HTTPResponse::HTTPStatus>(r.status));
  out += "\r\n";
  if (!r.contentType.empty() && safeHeaderText(r.contentType)) {
    out += "Content-Type: ";
    out += r.contentType;
    out += "\r\n";
  }
  for (const auto& h : r.headers) {
    if (core::equalsIgnoreCase(h.name, "Content-Length") ||
        core::equalsIgnoreCase(h.name, "Connection") ||
        core::equalsIgnoreCase(h.name, "Transfer-Encoding") || !safeHeaderText(h.name) ||
        !safeHeaderText(h.value)) {
      continue;
    }
    out += h.name;
    out += ": ";
    out += h.value;
    out += "\r\n";
  }
  out += "Content-Length: ";
  out += std::to_string(r.body.size());
  out += "\r\n";
  if (!keepAlive) {
    out += "Connection: close\r\n";
  } else if (http10) {
    out += "Connection: keep-alive\r\n";
  }
  out += "\r\n";
  if (!headRequest) out += r.body;
  return out;
}

// Threads for blocking handle() calls, started on demand up to a maximum.
class WorkerPool {
 public:
  WorkerPool(int maxThreads, int maxQueue)
      : maxThreads_(std::max(1, maxThreads)), maxQueue_(std::max(1, maxQueue)) {}
  ~WorkerPool() { stop(); }

  bool post(std::function<void()> job) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_ || static_cast<int>(queue_.size()) >= maxQueue_) return false;
    queue_.push_back(std::move(job));
    if (static_cast<int>(queue_.size()) > idle_ &&
        static_cast<int>(threads_.size()) < maxThreads_) {
      threads_.emplace_back([this] {
        core::nameThisThread("sb-http-worker");
        run();
      });
    } else {
      wake_.notify_one();
    }
    return true;
  }

  // Runs what is queued, then joins the threads.
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
    threads_.clear();
  }

 private:
  void run() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      ++idle_;
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      --idle_;
      if (queue_.empty()) return;
      std::function<void()> job = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      job();
      lock.lock();
    }
  }

  const int maxThreads_;
  const int maxQueue_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> queue_;
  std::vector<std::thread> threads_;
  int idle_ = 0;
  bool stopping_ = false;
};

class IoLoop;
thread_local IoLoop* tlsLoop = nullptr;                 // the loop running on this thread
thread_local std::vector<IoLoop*>* tlsBatch = nullptr;  // loops to wake when the batch ends

// One answer travelling back to its connection.
struct Done {
  std::uint64_t connId;
  std::uint64_t seq;
  std::string bytes;
  bool close;
};

}  // namespace

struct HttpServer::Impl {
  Impl(HttpRouter& r, HttpServerOptions o) : router(r), options(std::move(o)) {}
  HttpRouter& router;
  HttpServerOptions options;
  std::unique_ptr<Poco::Net::ServerSocket> listener;
  std::vector<std::unique_ptr<IoLoop>> loops;
  std::unique_ptr<WorkerPool> pool;
  std::atomic<int> connections{0};
  std::atomic<bool> stopping{false};
  int boundPort = 0;
  bool started = false;
};

namespace {

// An event loop owning a share of the connections. Everything but post() and wake() runs on its
// own thread.
class IoLoop {
 public:
  IoLoop(HttpServer::Impl& server, int listenFd) : server_(server), listenFd_(listenFd) {
    epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
    wakeFd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (epoll_ < 0 || wakeFd_ < 0)
      throw std::runtime_error(std::string("epoll: ") + std::strerror(errno));
    add(wakeFd_, kWakeId, EPOLLIN);
    // EPOLLEXCLUSIVE: a new connection wakes one loop, not all of them.
    add(listenFd_, kListenerId, EPOLLIN | EPOLLEXCLUSIVE);
    const auto& o = server_.options;
    int shortest = std::min({o.idleTimeoutMs, o.headerTimeoutMs, 4000});
    tickMs_ = std::clamp(shortest / 4, 5, 1000);
  }
  ~IoLoop() {
    join();
    for (auto& [id, c] : conns_) ::close(c->fd);
    ::close(wakeFd_);
    ::close(epoll_);
  }

  void start() {
    thread_ = std::thread([this] {
      core::nameThisThread("sb-http-io");
      run();
    });
  }
  void join() {
    if (thread_.joinable()) thread_.join();
  }

  // Any thread: queue an answer for one of this loop's connections.
  void post(Done done) {
    if (tlsLoop == this) {
      apply(std::move(done));
      return;
    }
    bool signal;
    {
      std::lock_guard<std::mutex> lock(mailboxMutex_);
      signal = mailbox_.empty();
      mailbox_.push_back(std::move(done));
    }
    if (tlsBatch != nullptr) {
      if (std::find(tlsBatch->begin(), tlsBatch->end(), this) == tlsBatch->end())
        tlsBatch->push_back(this);
    } else if (signal) {
      wake();
    }
  }

  void wake() {
    std::uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wakeFd_, &one, sizeof(one));
  }

 private:
  struct Slot {
    std::uint64_t seq = 0;
    bool ready = false;
    bool close = false;
    std::string bytes;
  };

  struct Conn {
    std::uint64_t id;
    int fd;
    HttpRequestParser parser;
    std::string in;
    std::string out;
    std::size_t outPos = 0;
    std::deque<Slot> slots;
    std::uint64_t nextSeq = 0;
    core::HttpRequest request;  // the request whose head was parsed
    bool keepAlive = true;
    bool http10 = false;
    bool headMethod = false;
    bool discard = false;          // a 404 path: the body is read and dropped
    bool closeAfterFlush = false;  // no further requests: close once every answer is written
    bool pipelinePaused = false;
    bool peerClosed = false;
    bool lingering = false;  // answered and write side shut; reading until EOF
    bool wantWrite = false;
    bool requestStarted = false;
    std::uint32_t events = EPOLLIN;
    SteadyClock::time_point lastActivity;
    SteadyClock::time_point requestStart;
    SteadyClock::time_point lingerUntil;

    explicit Conn(const HttpParserLimits& limits) : parser(limits) {}
  };

  void add(int fd, std::uint64_t id, std::uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = id;
    if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      throw std::runtime_error(std::string("epoll_ctl: ") + std::strerror(errno));
    }
  }

  void run() {
    tlsLoop = this;
    std::vector<epoll_event> events(256);
    bool draining = false;
    SteadyClock::time_point drainUntil;
    nextSweep_ = SteadyClock::now() + std::chrono::milliseconds(tickMs_);
    for (;;) {
      int n = ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), tickMs_);
      now_ = SteadyClock::now();
      for (int i = 0; i < n; ++i) {
        const std::uint64_t id = events[i].data.u64;
        const std::uint32_t ev = events[i].events;
        if (id == kListenerId) {
          if (!draining) acceptAll();
        } else if (id == kWakeId) {
          std::uint64_t count;
          [[maybe_unused]] ssize_t r = ::read(wakeFd_, &count, sizeof(count));
          drainMailbox();
        } else {
          auto it = conns_.find(id);
          if (it == conns_.end()) continue;
          Conn& c = *it->second;
          if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
            if (!onReadable(c)) continue;
          }
          if ((ev & EPOLLOUT) && c.wantWrite) markDirty(c);
        }
      }
      flushDirty();
      if (now_ >= nextSweep_) {
        sweep();
        nextSweep_ = now_ + std::chrono::milliseconds(tickMs_);
      }
      if (server_.stopping.load(std::memory_order_acquire)) {
        if (!draining) {
          draining = true;
          drainUntil = now_ + std::chrono::milliseconds(server_.options.drainTimeoutMs);
          beginDrain();
          flushDirty();
        }
        if (conns_.empty() || now_ >= drainUntil) break;
      }
    }
    std::vector<std::uint64_t> ids;
    for (auto& [id, c] : conns_) ids.push_back(id);
    for (auto id : ids) closeConn(id);
    tlsLoop = nullptr;
  }

  void acceptAll() {
    for (int i = 0; i < 64; ++i) {
      int fd = ::accept4(listenFd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EMFILE || errno == ENFILE) {
          // Out of descriptors: stop listening until the next sweep instead of spinning.
          ::epoll_ctl(epoll_, EPOLL_CTL_DEL, listenFd_, nullptr);
          listenerPaused_ = true;
        }
        return;
      }
      if (server_.connections.load(std::memory_order_relaxed) >= server_.options.maxConnections) {
        std::string busy = serialize(problem(503, ErrorCode::kThrottled, "too many connections"),
                                     false, false, false);
        [[maybe_unused]] ssize_t w = ::send(fd, busy.data(), busy.size(), MSG_NOSIGNAL);
        ::close(fd);
        continue;
      }
      server_.connections.fetch_add(1, std::memory_order_relaxed);
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      auto conn = std::make_unique<Conn>(server_.options.limits);
      conn->id = nextId_++;
      conn->fd = fd;
      conn->lastActivity = now_;
      try {
        add(fd, conn->id, EPOLLIN);
      } catch (const std::exception&) {
        ::close(fd);
        server_.connections.fetch_sub(1, std::memory_order_relaxed);
        continue;
      }
      conns_.emplace(conn->id, std::move(conn));
    }
  }

  // False when the connection was closed.
  bool onReadable(Conn& c) {
    char* buf = readBuffer();
    for (int round = 0; round < 4; ++round) {
      ssize_t n = ::recv(c.fd, buf, kReadChunk, 0);
      if (n > 0) {
        c.lastActivity = now_;
        if (!c.lingering) c.in.append(buf, static_cast<std::size_t>(n));
        if (static_cast<std::size_t>(n) < kReadChunk) break;
        continue;
      }
      if (n == 0) {
        c.peerClosed = true;
        break;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      closeConn(c.id);
      return false;
    }
    if (c.lingering) {
      if (c.peerClosed) {
        closeConn(c.id);
        return false;
      }
      return true;
    }
    processInput(c);
    if (c.peerClosed) {
      // Answers already owed are still written (the client may have only half-closed).
      if (c.slots.empty() && c.outPos >= c.out.size()) {
        closeConn(c.id);
        return false;
      }
      c.closeAfterFlush = true;
      updateInterest(c);
    }
    return true;
  }

  void processInput(Conn& c) {
    std::size_t pos = 0;
    while (!c.closeAfterFlush) {
      if (static_cast<int>(c.slots.size()) >= server_.options.maxPipelined) {
        c.pipelinePaused = true;
        break;
      }
      std::size_t used = 0;
      auto status = c.parser.parse(std::string_view(c.in).substr(pos), used);
      pos += used;
      if (status == HttpRequestParser::Status::kNeedMore) break;
      if (status == HttpRequestParser::Status::kHead) {
        onHead(c, pos < c.in.size());
      } else if (status == HttpRequestParser::Status::kComplete) {
        dispatch(c);
        c.parser.reset();
        c.requestStarted = false;
      } else {
        onParseError(c);
        break;
      }
    }
    if (pos > 0) c.in.erase(0, pos);
    if (c.in.empty() && c.in.capacity() > kKeepCapacity) std::string().swap(c.in);
    if (c.in.empty() && c.parser.idle()) {
      c.requestStarted = false;
    } else if (!c.requestStarted) {
      c.requestStarted = true;
      c.requestStart = now_;
    }
    updateInterest(c);
  }

  void onHead(Conn& c, bool bodyBytesPresent) {
    const HttpRequestHead& h = c.parser.head();
    c.request = core::HttpRequest{};
    core::HttpRequest& req = c.request;
    req.method = h.method;
    c.keepAlive = h.keepAlive;
    c.http10 = h.minorVersion == 0;
    c.headMethod = h.method == "HEAD";
    c.discard = false;
    std::string_view target = h.target;
    if (target.starts_with("http://") || target.starts_with("https://")) {  // absolute form
      std::size_t slash = target.find('/', target.find("//") + 2);
      target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
    }
    std::size_t q = target.find('?');
    if (q != std::string_view::npos) req.query = std::string(target.substr(q + 1));
    try {
      Poco::URI::decode(std::string(target.substr(0, q)), req.path);
    } catch (const std::exception&) {
      respond(c,
              problem(400, ErrorCode::kInvalid, "malformed percent-encoding in the request path"),
              false);
      return;
    }
    req.scheme = "http";
    req.headers = h.headers;
    if (const std::string* host = req.header("Host")) req.host = *host;
    if (const std::string* proto = req.header("X-Forwarded-Proto")) req.scheme = *proto;

    std::optional<std::size_t> limit;
    try {
      limit = server_.router.bodyLimit(req.path);
    } catch (const std::exception&) {
      respond(c, problem(500, ErrorCode::kException, "internal error"), false);
      return;
    }
    const bool hasBody = h.chunked || (h.contentLength && *h.contentLength > 0);
    if (!limit) {
      // A client waiting for 100 Continue gets the final answer instead and sends no body.
      if ((h.contentLength && *h.contentLength > kDiscardLimit) ||
          (h.expectContinue && hasBody && !bodyBytesPresent)) {
        respond(c, notFound(req.path), false);
        return;
      }
      c.discard = true;
      c.parser.acceptBody(kDiscardLimit);
      return;
    }
    if (h.contentLength && *h.contentLength > *limit) {
      rejectTooLarge(c, "body of " + std::to_string(*h.contentLength) +
                            " bytes exceeds the limit of " + std::to_string(*limit) + " bytes");
      return;
    }
    if (h.expectContinue && hasBody && !bodyBytesPresent) {
      Slot& s = newSlot(c);
      s.ready = true;
      s.bytes = "HTTP/1.1 100 Continue\r\n\r\n";
      markDirty(c);
    }
    c.parser.acceptBody(*limit);
  }

  core::HttpResponse notFound(const std::string& path) {
    return problem(404, ErrorCode::kNotFound, "no channel or endpoint serves " + path);
  }

  void onParseError(Conn& c) {
    int status = c.parser.errorStatus();
    if (status == 413 && c.discard) {
      respond(c, notFound(c.request.path), false);
    } else if (status == 413) {
      rejectTooLarge(c, c.parser.errorMessage());
    } else {
      respond(c, problem(status, codeForStatus(status), c.parser.errorMessage()), false);
    }
  }

  // 413 once the router has counted and audited the refusal (a store write: on the pool).
  void rejectTooLarge(Conn& c, std::string message) {
    const bool http10 = c.http10;
    Slot& slot = newSlot(c);
    c.closeAfterFlush = true;
    HttpCompletion done = completion(c, slot.seq, false, http10, false);
    core::HttpResponse answer = problem(413, ErrorCode::kTooLong, std::move(message));
    HttpRouter& router = server_.router;
    std::string path = c.request.path;
    if (!server_.pool->post([&router, path, answer, done] {
          try {
            router.rejectedBeforeBody(path, 413);
          } catch (const std::exception& e) {
            std::fprintf(stderr, "switchboard: recording a refused body failed: %s\n", e.what());
          }
          done(answer);
        })) {
      done(std::move(answer));
    }
  }

  void dispatch(Conn& c) {
    if (c.discard) {
      c.discard = false;
      respond(c, notFound(c.request.path), c.keepAlive);
      return;
    }
    core::HttpRequest req = std::move(c.request);
    req.body = std::move(c.parser.body());
    const bool keepAlive = c.keepAlive;
    Slot& slot = newSlot(c);
    if (!keepAlive) c.closeAfterFlush = true;
    HttpCompletion done = completion(c, slot.seq, keepAlive, c.http10, c.headMethod);
    c.headMethod = false;  // a later parse error is not an answer to this HEAD
    HttpRouter& router = server_.router;
    bool taken = false;
    try {
      taken = router.handleAsync(req, done);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "switchboard: request handler threw: %s\n", e.what());
      done(problem(500, ErrorCode::kException, "internal error"));
      return;
    }
    if (taken) return;
    if (!server_.pool->post([&router, req = std::move(req), done] {
          core::HttpResponse r;
          try {
            r = router.handle(req);
          } catch (const std::exception& e) {
            std::fprintf(stderr, "switchboard: request handler threw: %s\n", e.what());
            r = problem(500, ErrorCode::kException, "internal error");
          }
          done(std::move(r));
        })) {
      core::HttpResponse busy = problem(503, ErrorCode::kThrottled, "server busy; retry later");
      busy.headers.push_back({"Retry-After", "1"});
      done(std::move(busy));
    }
  }

  HttpCompletion completion(Conn& c, std::uint64_t seq, bool keepAlive, bool http10, bool head) {
    IoLoop* loop = this;
    std::atomic<bool>* stopping = &server_.stopping;
    std::uint64_t id = c.id;
    return [loop, stopping, id, seq, keepAlive, http10, head](core::HttpResponse r) {
      const bool keep = keepAlive && !stopping->load(std::memory_order_relaxed);
      loop->post(Done{id, seq, serialize(r, keep, http10, head), !keep});
    };
  }

  // An answer decided on the I/O thread, in order behind earlier ones.
  void respond(Conn& c, const core::HttpResponse& r, bool keepAlive) {
    keepAlive = keepAlive && !server_.stopping.load(std::memory_order_relaxed);
    Slot& s = newSlot(c);
    s.ready = true;
    s.close = !keepAlive;
    s.bytes = serialize(r, keepAlive, c.http10, c.headMethod);
    if (!keepAlive) c.closeAfterFlush = true;
    markDirty(c);
  }

  Slot& newSlot(Conn& c) {
    c.slots.emplace_back();
    c.slots.back().seq = c.nextSeq++;
    return c.slots.back();
  }

  void apply(Done done) {
    auto it = conns_.find(done.connId);
    if (it == conns_.end()) return;  // closed meanwhile
    Conn& c = *it->second;
    if (c.slots.empty() || done.seq < c.slots.front().seq) return;
    std::uint64_t index = done.seq - c.slots.front().seq;
    if (index >= c.slots.size()) return;
    Slot& s = c.slots[index];
    s.ready = true;
    s.close = done.close;
    s.bytes = std::move(done.bytes);
    markDirty(c);
  }

  void drainMailbox() {
    {
      std::lock_guard<std::mutex> lock(mailboxMutex_);
      taken_.swap(mailbox_);
    }
    for (auto& d : taken_) apply(std::move(d));
    taken_.clear();
  }

  void markDirty(Conn& c) { dirty_.push_back(c.id); }

  void flushDirty() {
    // flush() may resume a paused connection, whose new answers append to dirty_.
    for (std::size_t i = 0; i < dirty_.size(); ++i) {
      auto it = conns_.find(dirty_[i]);
      if (it != conns_.end()) flush(*it->second);
    }
    dirty_.clear();
  }

  void flush(Conn& c) {
    while (!c.slots.empty() && c.slots.front().ready) {
      Slot& s = c.slots.front();
      if (c.out.empty()) {
        c.out.swap(s.bytes);
        c.outPos = 0;
      } else {
        c.out += s.bytes;
      }
      const bool close = s.close;
      c.slots.pop_front();
      if (close) {
        c.closeAfterFlush = true;
        c.slots.clear();
      }
    }
    while (c.outPos < c.out.size()) {
      ssize_t n = ::send(c.fd, c.out.data() + c.outPos, c.out.size() - c.outPos, MSG_NOSIGNAL);
      if (n > 0) {
        c.outPos += static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      closeConn(c.id);
      return;
    }
    c.wantWrite = c.outPos < c.out.size();
    if (!c.wantWrite) {
      c.out.clear();
      c.outPos = 0;
      if (c.out.capacity() > kKeepCapacity) std::string().swap(c.out);
    }
    if (c.closeAfterFlush && c.slots.empty() && !c.wantWrite && !c.lingering) {
      int unread = 0;
      if (c.peerClosed || (server_.stopping.load(std::memory_order_relaxed) &&
                           ::ioctl(c.fd, FIONREAD, &unread) == 0 && unread == 0)) {
        closeConn(c.id);
        return;
      }
      // Shut the write side and read until the client closes, so unread request bytes do not
      // turn the close into a reset that could destroy the answer in flight.
      ::shutdown(c.fd, SHUT_WR);
      c.lingering = true;
      c.lingerUntil = now_ + kLinger;
      c.in.clear();
    }
    if (c.pipelinePaused && static_cast<int>(c.slots.size()) < server_.options.maxPipelined &&
        !c.closeAfterFlush) {
      c.pipelinePaused = false;
      processInput(c);
      return;
    }
    updateInterest(c);
  }

  void updateInterest(Conn& c) {
    bool read = !c.peerClosed && (c.lingering || (!c.closeAfterFlush && !c.pipelinePaused));
    std::uint32_t want = (read ? EPOLLIN : 0u) | (c.wantWrite ? EPOLLOUT : 0u);
    if (want == c.events) return;
    epoll_event ev{};
    ev.events = want;
    ev.data.u64 = c.id;
    ::epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &ev);
    c.events = want;
  }

  void closeConn(std::uint64_t id) {
    auto it = conns_.find(id);
    if (it == conns_.end()) return;
    ::epoll_ctl(epoll_, EPOLL_CTL_DEL, it->second->fd, nullptr);
    ::close(it->second->fd);
    conns_.erase(it);
    server_.connections.fetch_sub(1, std::memory_order_relaxed);
  }

  void sweep() {
    if (listenerPaused_ && !server_.stopping.load()) {
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLEXCLUSIVE;
      ev.data.u64 = kListenerId;
      if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, listenFd_, &ev) == 0) listenerPaused_ = false;
    }
    const auto idle = std::chrono::milliseconds(server_.options.idleTimeoutMs);
    const auto header = std::chrono::milliseconds(server_.options.headerTimeoutMs);
    std::vector<std::uint64_t> expired;
    std::vector<Conn*> slow;
    for (auto& [id, cp] : conns_) {
      Conn& c = *cp;
      if (c.lingering) {
        if (now_ >= c.lingerUntil) expired.push_back(id);
      } else if (c.closeAfterFlush || c.pipelinePaused) {
        continue;  // waiting on us, not on the client
      } else if (!c.requestStarted) {
        if (c.slots.empty() && !c.wantWrite && now_ - c.lastActivity >= idle) expired.push_back(id);
      } else if (c.parser.inHead() ? now_ - c.requestStart >= header
                                   : now_ - c.lastActivity >= header) {
        slow.push_back(&c);
      }
    }
    for (auto id : expired) closeConn(id);
    for (Conn* c : slow)
      respond(*c, problem(408, ErrorCode::kTimeout, "request not received in time"), false);
    flushDirty();
  }

  // stop(): no new connections or requests; connections close once their answers are written.
  void beginDrain() {
    ::epoll_ctl(epoll_, EPOLL_CTL_DEL, listenFd_, nullptr);
    std::vector<std::uint64_t> idle;
    for (auto& [id, cp] : conns_) {
      Conn& c = *cp;
      c.closeAfterFlush = true;
      if (c.slots.empty() && !c.wantWrite) {
        idle.push_back(id);
      } else {
        updateInterest(c);
      }
    }
    for (auto id : idle) closeConn(id);
  }

  static char* readBuffer() {
    thread_local std::vector<char> buffer(kReadChunk);
    return buffer.data();
  }

  HttpServer::Impl& server_;
  const int listenFd_;
  int epoll_ = -1;
  int wakeFd_ = -1;
  int tickMs_ = 1000;
  bool listenerPaused_ = false;
  std::thread thread_;
  std::unordered_map<std::uint64_t, std::unique_ptr<Conn>> conns_;
  std::uint64_t nextId_ = 16;
  std::vector<std::uint64_t> dirty_;
  SteadyClock::time_point now_;
  SteadyClock::time_point nextSweep_;
  std::mutex mailboxMutex_;
  std::vector<Done> mailbox_;
  std::vector<Done> taken_;
};

}  // namespace

HttpCompletionBatch::HttpCompletionBatch() : owner_(tlsBatch == nullptr) {
  if (owner_) tlsBatch = new std::vector<IoLoop*>();  // nested scopes share the outermost batch
}

HttpCompletionBatch::~HttpCompletionBatch() {
  if (!owner_) return;
  std::unique_ptr<std::vector<IoLoop*>> loops(tlsBatch);
  tlsBatch = nullptr;
  for (IoLoop* loop : *loops) loop->wake();
}

HttpServer::HttpServer(HttpRouter& router, HttpServerOptions options)
    : impl_(std::make_unique<Impl>(router, std::move(options))) {}

HttpServer::~HttpServer() { stop(); }

void HttpServer::start() {
  Impl& s = *impl_;
  s.listener = std::make_unique<Poco::Net::ServerSocket>();
  s.listener->bind(
      Poco::Net::SocketAddress(s.options.bind, static_cast<Poco::UInt16>(s.options.port)), true);
  s.listener->listen(1024);
  s.listener->setBlocking(false);
  s.boundPort = s.listener->address().port();
  int loops = s.options.ioThreads;
  if (loops <= 0) loops = static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 2u));
  s.pool = std::make_unique<WorkerPool>(s.options.workerThreads, s.options.workerQueue);
  for (int i = 0; i < loops; ++i) {
    s.loops.push_back(std::make_unique<IoLoop>(s, s.listener->impl()->sockfd()));
  }
  for (auto& loop : s.loops) loop->start();
  s.started = true;
}

void HttpServer::stop() {
  Impl& s = *impl_;
  if (!s.started) return;
  s.started = false;
  s.stopping.store(true, std::memory_order_release);
  for (auto& loop : s.loops) loop->wake();
  for (auto& loop : s.loops) loop->join();
  s.pool->stop();
  s.listener->close();
}

int HttpServer::port() const { return impl_->boundPort; }

bool HttpServer::runBlocking(std::function<void()> work) {
  return impl_->pool && !impl_->stopping.load() && impl_->pool->post(std::move(work));
}

}  // namespace switchboard::runtime
