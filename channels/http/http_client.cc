#include "channels/http/http_client.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <list>
#include <memory>
#include <optional>

namespace switchboard::channels {

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kBufferBytes = 32 * 1024;  // one recv's worth; a response head must fit
constexpr std::size_t kMaxLineBytes = 4096;      // a chunk-size or trailer line

// Whether the header value `list` (absent: null) holds `token`.
bool hasToken(const std::string* list, std::string_view token) {
  return list != nullptr && core::headerListHas(*list, token);
}

struct Url {
  std::string_view authority;  // host[:port] as written: the Host header
  std::string_view host;       // without IPv6 brackets
  int port = 80;
  std::string_view target;  // path and query; empty means "/"
};

std::optional<Url> parseUrl(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (url.size() < kScheme.size() ||
      !core::equalsIgnoreCase(url.substr(0, kScheme.size()), kScheme)) {
    return std::nullopt;
  }
  std::string_view rest = url.substr(kScheme.size());
  const std::size_t end = rest.find_first_of("/?#");
  Url u;
  u.authority = rest.substr(0, end);
  if (end != std::string_view::npos) u.target = rest.substr(end, rest.find('#') - end);
  if (u.authority.empty() || u.authority.find('@') != std::string_view::npos) return std::nullopt;
  std::string_view port;
  if (u.authority.front() == '[') {
    const std::size_t close = u.authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    u.host = u.authority.substr(1, close - 1);
    const std::string_view after = u.authority.substr(close + 1);
    if (!after.empty() && after.front() != ':') return std::nullopt;
    if (!after.empty()) port = after.substr(1);
  } else {
    const std::size_t colon = u.authority.find(':');
    u.host = u.authority.substr(0, colon);
    if (colon != std::string_view::npos) port = u.authority.substr(colon + 1);
  }
  if (u.host.empty()) return std::nullopt;
  if (!port.empty()) {
    int n = 0;
    for (char c : port) {
      if (c < '0' || c > '9' || (n = n * 10 + (c - '0')) > 65535) return std::nullopt;
    }
    if (n == 0) return std::nullopt;
    u.port = n;
  }
  return u;
}

std::string connectionError(int error) {
  return std::string("connection: ") + std::strerror(error);
}

// Reads one response out of the bytes a connection receives, in place.
class ResponseReader {
 public:
  enum class Step { kMore, kDone, kError };

  ResponseReader(std::size_t maxBody, bool bodyless) : maxBody_(maxBody), bodyless_(bodyless) {}

  // Parses what it can of data[begin, end) and advances `begin` past what it consumed.
  Step feed(const char* data, std::size_t& begin, std::size_t end) {
    sawBytes_ = sawBytes_ || begin != end;
    while (true) {
      const std::string_view avail(data + begin, end - begin);
      switch (phase_) {
        case Phase::kHead: {
          const std::size_t at = avail.find("\r\n\r\n");
          if (at == std::string_view::npos) {
            if (avail.size() >= kBufferBytes) return error("response head larger than the buffer");
            return Step::kMore;
          }
          if (!readHead(avail.substr(0, at + 2))) return Step::kError;
          begin += at + 4;
          break;
        }
        case Phase::kFixed:
        case Phase::kChunkData: {
          const std::size_t n = std::min<std::size_t>(remaining_, avail.size());
          begin += n;
          remaining_ -= n;
          if (!take(avail.substr(0, n))) return Step::kDone;
          if (remaining_ > 0) return Step::kMore;
          phase_ = phase_ == Phase::kFixed ? Phase::kDone : Phase::kChunkEnd;
          break;
        }
        case Phase::kChunkSize:
        case Phase::kTrailer: {
          const std::size_t eol = avail.find("\r\n");
          if (eol == std::string_view::npos) {
            if (avail.size() > kMaxLineBytes) return error("chunk line too long");
            return Step::kMore;
          }
          const std::string_view line = avail.substr(0, eol);
          begin += eol + 2;
          if (phase_ == Phase::kTrailer) {
            if (line.empty()) phase_ = Phase::kDone;
            break;
          }
          std::size_t size = 0;
          std::size_t digits = 0;
          for (char c : line) {
            const int v = c >= '0' && c <= '9'                     ? c - '0'
                          : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10
                                                                   : -1;
            if (v < 0) break;
            if (++digits > 15) return error("chunk size too large");
            size = size * 16 + static_cast<std::size_t>(v);
          }
          if (digits == 0) return error("malformed chunk size");
          remaining_ = size;
          phase_ = size == 0 ? Phase::kTrailer : Phase::kChunkData;
          break;
        }
        case Phase::kChunkEnd:
          if (avail.size() < 2) return Step::kMore;
          if (avail.substr(0, 2) != "\r\n") return error("malformed chunk end");
          begin += 2;
          phase_ = Phase::kChunkSize;
          break;
        case Phase::kUntilClose:
          begin = end;
          if (!take(avail)) return Step::kDone;
          return Step::kMore;
        case Phase::kDone:
          if (begin != end) keepAlive_ = false;  // bytes after the response: not a clean stream
          return Step::kDone;
      }
    }
  }

  // The peer closed the connection after the bytes fed so far.
  Step eof() {
    keepAlive_ = false;
    if (phase_ == Phase::kUntilClose || phase_ == Phase::kDone) return Step::kDone;
    if (phase_ == Phase::kHead) {
      return error(sawBytes_ ? "connection closed in the response head"
                             : "connection closed by peer");
    }
    return error("connection closed in the response body");
  }

  HttpReply& reply() { return reply_; }
  bool keepAlive() const { return keepAlive_; }
  const std::string& errorText() const { return error_; }

 private:
  enum class Phase {
    kHead,
    kFixed,
    kChunkSize,
    kChunkData,
    kChunkEnd,
    kTrailer,
    kUntilClose,
    kDone
  };

  Step error(std::string text) {
    error_ = std::move(text);
    return Step::kError;
  }

  // The status line and headers, each line ending in CRLF. Sets the body's framing.
  bool readHead(std::string_view head) {
    const std::size_t eol = head.find("\r\n");
    const std::string_view status = head.substr(0, eol);
    // "HTTP/1.x 200 OK"
    if (status.size() < 12 || status.substr(0, 7) != "HTTP/1." || status[8] != ' ' ||
        (status.size() > 12 && status[12] != ' ')) {
      error("malformed status line");
      return false;
    }
    int code = 0;
    for (char c : status.substr(9, 3)) {
      if (c < '0' || c > '9') {
        error("malformed status line");
        return false;
      }
      code = code * 10 + (c - '0');
    }
    reply_ = HttpReply{};
    reply_.status = code;
    reply_.reason = status.size() > 13 ? std::string(status.substr(13)) : std::string();
    std::string_view rest = head.substr(eol + 2);
    while (!rest.empty()) {
      const std::size_t end = rest.find("\r\n");
      const std::string_view line = rest.substr(0, end);
      rest.remove_prefix(end + 2);
      const std::size_t colon = line.find(':');
      if (colon == std::string_view::npos || colon == 0) continue;  // obsolete folding: ignored
      reply_.headers.push_back({std::string(line.substr(0, colon)),
                                std::string(core::trimHeaderSpace(line.substr(colon + 1)))});
    }
    if (code >= 100 && code < 200 && code != 101) {  // interim (100 Continue): the real one follows
      phase_ = Phase::kHead;
      return true;
    }
    const std::string* connection = reply_.header("Connection");
    keepAlive_ =
        status[7] == '1' ? !hasToken(connection, "close") : hasToken(connection, "keep-alive");
    if (bodyless_ || code == 204 || code == 304) {
      phase_ = Phase::kDone;
    } else if (const std::string* te = reply_.header("Transfer-Encoding")) {
      const std::size_t comma = te->rfind(',');
      if (core::equalsIgnoreCase(
              core::trimHeaderSpace(comma == std::string::npos
                                        ? std::string_view(*te)
                                        : std::string_view(*te).substr(comma + 1)),
              "chunked")) {
        phase_ = Phase::kChunkSize;
      } else {
        phase_ = Phase::kUntilClose;
        keepAlive_ = false;
      }
    } else if (const std::string* cl = reply_.header("Content-Length")) {
      std::size_t n = 0;
      const std::string_view text = core::trimHeaderSpace(*cl);
      if (text.empty() || text.size() > 15) {
        error("malformed Content-Length");
        return false;
      }
      for (char c : text) {
        if (c < '0' || c > '9') {
          error("malformed Content-Length");
          return false;
        }
        n = n * 10 + static_cast<std::size_t>(c - '0');
      }
      remaining_ = n;
      phase_ = n == 0 ? Phase::kDone : Phase::kFixed;
      if (n > maxBody_)
        reply_.body.reserve(maxBody_);
      else
        reply_.body.reserve(n);
    } else {
      phase_ = Phase::kUntilClose;
      keepAlive_ = false;
    }
    return true;
  }

  // Appends body bytes; false when the body reached maxBody (the rest is not read).
  bool take(std::string_view bytes) {
    const std::size_t room = maxBody_ - reply_.body.size();
    if (bytes.size() > room) {
      reply_.body.append(bytes.substr(0, room));
      keepAlive_ = false;
      phase_ = Phase::kDone;
      return false;
    }
    reply_.body.append(bytes);
    return true;
  }

  const std::size_t maxBody_;
  const bool bodyless_;
  Phase phase_ = Phase::kHead;
  std::size_t remaining_ = 0;
  bool keepAlive_ = false;
  bool sawBytes_ = false;
  HttpReply reply_;
  std::string error_;
};

}  // namespace

const std::string* HttpReply::header(std::string_view name) const {
  for (const auto& h : headers) {
    if (core::equalsIgnoreCase(h.name, name)) return &h.value;
  }
  return nullptr;
}

bool isPlainHttpUrl(std::string_view url) { return parseUrl(url).has_value(); }

// One exchangeMany() call: per endpoint a queue of requests and up to maxConnections slots, each
// slot carrying one request at a time on its connection, all driven by one poll() loop.
class ExchangeRun {
 public:
  ExchangeRun(HttpClient& client, std::span<const ClientRequest> requests,
              std::span<ClientExchange> out, std::chrono::milliseconds timeout, std::size_t maxBody,
              std::size_t maxConnections)
      : client_(client), requests_(requests), out_(out), timeout_(timeout), maxBody_(maxBody) {
    urls_.reserve(requests.size());
    for (std::size_t i = 0; i < requests.size(); ++i) {
      urls_.push_back(parseUrl(requests[i].url));
      if (!urls_.back()) {
        out_[i].reply = fail(ErrorCode::kNotSupported, "not a plain http:// URL");
        continue;
      }
      std::string key(urls_.back()->host);
      key += ':';
      key += std::to_string(urls_.back()->port);
      auto it = std::find_if(endpoints_.begin(), endpoints_.end(),
                             [&](const auto& e) { return e.key == key; });
      if (it == endpoints_.end()) {
        endpoints_.push_back({std::move(key),
                              std::string(urls_.back()->host),
                              urls_.back()->port,
                              {},
                              0,
                              {},
                              {},
                              false});
        it = std::prev(endpoints_.end());
      }
      it->queue.push_back(i);
    }
    for (auto& e : endpoints_) {
      for (std::size_t n = std::min(maxConnections, e.queue.size()); n > 0; --n)
        slots_.emplace_back(&e);
    }
  }

  ~ExchangeRun() {
    for (auto& s : slots_) closeSlot(s);
    for (auto& e : endpoints_) {
      for (int fd : e.kept) client_.giveBack(e.key, fd);
    }
  }

  void run() {
    for (auto& e : endpoints_) {
      const auto slots = static_cast<std::size_t>(std::count_if(
          slots_.begin(), slots_.end(), [&](const Slot& s) { return s.endpoint == &e; }));
      client_.takeIdle(e.key, slots, e.kept);
    }
    const Clock::time_point now = Clock::now();
    for (auto& s : slots_) next(s, now);
    std::vector<pollfd> fds;
    std::vector<Slot*> polled;
    while (true) {
      fds.clear();
      polled.clear();
      Clock::time_point earliest = Clock::time_point::max();
      for (auto& s : slots_) {
        if (s.phase == Phase::kFinished) continue;
        fds.push_back({s.fd, static_cast<short>(s.phase == Phase::kReading ? POLLIN : POLLOUT), 0});
        polled.push_back(&s);
        earliest = std::min(earliest, s.deadline);
      }
      if (fds.empty()) return;
      const auto wait =
          std::chrono::ceil<std::chrono::milliseconds>(earliest - Clock::now()).count();
      const int ready =
          ::poll(fds.data(), fds.size(), static_cast<int>(std::max<long long>(wait, 0)));
      if (ready < 0 && errno != EINTR) {
        const int e = errno;
        for (Slot* s : polled)
          failSlot(*s, fail(ErrorCode::kTransient, connectionError(e)), Clock::now());
        continue;
      }
      const Clock::time_point t = Clock::now();
      for (std::size_t k = 0; k < fds.size(); ++k) {
        Slot& s = *polled[k];
        if (ready > 0 && fds[k].revents != 0) {
          onReady(s, t);
        } else if (t >= s.deadline) {
          failSlot(s,
                   fail(ErrorCode::kTimeout,
                        "timeout after " + std::to_string(timeout_.count()) + " ms " +
                            (s.phase == Phase::kConnecting ? "connecting"
                             : s.phase == Phase::kWriting  ? "sending the request"
                                                           : "waiting for the response")),
                   t);
        }
      }
    }
  }

 private:
  enum class Phase { kFinished, kConnecting, kWriting, kReading };

  struct Endpoint {
    std::string key;  // host:port
    std::string host;
    int port;
    std::vector<std::size_t> queue;  // request indices, in order
    std::size_t next;
    std::vector<int> kept;  // kept connections taken for this run and not used yet
    sockaddr_storage address;
    bool resolved;
    socklen_t addressLength = 0;
  };

  struct Slot {
    explicit Slot(Endpoint* e) : endpoint(e) {}
    Endpoint* endpoint;
    int fd = -1;
    Phase phase = Phase::kFinished;
    std::size_t request = 0;
    Clock::time_point started{};
    Clock::time_point deadline = Clock::time_point::max();
    std::string head;
    std::size_t written = 0;  // of head and body
    std::unique_ptr<char[]> buffer;
    std::size_t begin = 0;
    std::size_t end = 0;
    std::optional<ResponseReader> reader;
  };

  // Gives `s` the endpoint's next request, on its kept connection, an idle one or a new one.
  void next(Slot& s, Clock::time_point now) {
    Endpoint& e = *s.endpoint;
    while (e.next < e.queue.size()) {
      s.request = e.queue[e.next++];
      s.started = now;
      s.deadline = now + timeout_;
      if (s.fd < 0 && e.kept.empty()) client_.takeIdle(e.key, 1, e.kept);
      if (s.fd < 0 && !e.kept.empty()) {
        s.fd = e.kept.back();
        e.kept.pop_back();
      }
      if (s.fd < 0 && !connect(s, now)) continue;
      startRequest(s);
      if (s.phase == Phase::kWriting && s.fd >= 0) write(s, now);
      if (s.fd >= 0) return;
    }
    if (s.fd >= 0) client_.giveBack(e.key, s.fd);
    s.fd = -1;
    s.phase = Phase::kFinished;
  }

  // Opens a non-blocking connection for s.request; false (with its result recorded) on failure.
  bool connect(Slot& s, Clock::time_point now) {
    Endpoint& e = *s.endpoint;
    if (!e.resolved) {
      addrinfo hints{};
      hints.ai_family = AF_UNSPEC;
      hints.ai_socktype = SOCK_STREAM;
      addrinfo* found = nullptr;
      const int rc = ::getaddrinfo(e.host.c_str(), std::to_string(e.port).c_str(), &hints, &found);
      if (rc != 0 || found == nullptr) {
        finish(s,
               fail(ErrorCode::kTransient,
                    std::string("connection: cannot resolve host: ") + gai_strerror(rc)),
               now);
        return false;
      }
      const addrinfo* pick = found;  // IPv4 first, as Poco's SocketAddress does
      for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
        if (a->ai_family == AF_INET) {
          pick = a;
          break;
        }
      }
      std::memcpy(&e.address, pick->ai_addr, pick->ai_addrlen);
      e.addressLength = pick->ai_addrlen;
      e.resolved = true;
      ::freeaddrinfo(found);
    }
    s.fd = ::socket(e.address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s.fd < 0) {
      finish(s, fail(ErrorCode::kTransient, connectionError(errno)), now);
      return false;
    }
    const int one = 1;
    ::setsockopt(s.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::connect(s.fd, reinterpret_cast<const sockaddr*>(&e.address), e.addressLength) == 0)
      return true;
    if (errno == EINPROGRESS) {
      s.phase = Phase::kConnecting;
      return true;
    }
    const int error = errno;
    closeSlot(s);
    finish(s, fail(ErrorCode::kTransient, connectionError(error)), now);
    return false;
  }

  void startRequest(Slot& s) {
    const ClientRequest& r = requests_[s.request];
    const Url& u = *urls_[s.request];
    s.head.clear();
    s.head.reserve(128 + r.url.size() + r.headers.size() * 64);
    s.head.append(r.method).append(" ");
    if (u.target.empty() || u.target.front() != '/') s.head += '/';
    s.head.append(u.target).append(" HTTP/1.1\r\nHost: ").append(u.authority).append("\r\n");
    for (const auto& h : r.headers) {
      if (core::equalsIgnoreCase(h.name, "Host") ||
          core::equalsIgnoreCase(h.name, "Content-Length"))
        continue;
      s.head.append(h.name).append(": ").append(h.value).append("\r\n");
    }
    if (r.method == "POST" || r.method == "PUT" || !r.body.empty()) {
      s.head.append("Content-Length: ").append(std::to_string(r.body.size())).append("\r\n");
    }
    s.head.append("\r\n");
    s.written = 0;
    s.begin = s.end = 0;
    s.reader.emplace(maxBody_, r.method == "HEAD");
    if (s.phase != Phase::kConnecting) s.phase = Phase::kWriting;
  }

  void onReady(Slot& s, Clock::time_point now) {
    switch (s.phase) {
      case Phase::kConnecting: {
        int error = 0;
        socklen_t length = sizeof error;
        ::getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &error, &length);
        if (error != 0)
          return failSlot(s, fail(ErrorCode::kTransient, connectionError(error)), now);
        s.phase = Phase::kWriting;
        s.deadline = now + timeout_;
        return write(s, now);
      }
      case Phase::kWriting:
        return write(s, now);
      case Phase::kReading:
        return read(s, now);
      case Phase::kFinished:
        return;
    }
  }

  // Sends what is left of head and body in one call; on to reading once all is out.
  void write(Slot& s, Clock::time_point now) {
    const std::string_view body = requests_[s.request].body;
    while (true) {
      iovec parts[2];
      int count = 0;
      if (s.written < s.head.size()) {
        parts[count++] = {s.head.data() + s.written, s.head.size() - s.written};
      }
      const std::size_t bodyDone = s.written > s.head.size() ? s.written - s.head.size() : 0;
      if (bodyDone < body.size()) {
        parts[count++] = {const_cast<char*>(body.data()) + bodyDone, body.size() - bodyDone};
      }
      if (count == 0) {
        s.phase = Phase::kReading;
        s.deadline = now + timeout_;
        return;
      }
      msghdr message{};
      message.msg_iov = parts;
      message.msg_iovlen = static_cast<std::size_t>(count);
      const ssize_t n = ::sendmsg(s.fd, &message, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;  // poll for POLLOUT
        return failSlot(s, fail(ErrorCode::kTransient, connectionError(errno)), now);
      }
      s.written += static_cast<std::size_t>(n);
      s.deadline = now + timeout_;
    }
  }

  // Reads what has arrived (large recvs into the slot's buffer) and parses it in place.
  void read(Slot& s, Clock::time_point now) {
    if (!s.buffer) s.buffer = std::make_unique_for_overwrite<char[]>(kBufferBytes);
    while (true) {
      if (s.end == kBufferBytes) {  // keep the unparsed tail, at the front
        std::memmove(s.buffer.get(), s.buffer.get() + s.begin, s.end - s.begin);
        s.end -= s.begin;
        s.begin = 0;
      }
      const std::size_t room = kBufferBytes - s.end;
      if (room == 0)
        return failSlot(s, fail(ErrorCode::kTransient, "response: head too large"), now);
      const ssize_t n = ::recv(s.fd, s.buffer.get() + s.end, room, 0);
      ResponseReader::Step step;
      if (n > 0) {
        s.end += static_cast<std::size_t>(n);
        s.deadline = now + timeout_;
        step = s.reader->feed(s.buffer.get(), s.begin, s.end);
        if (s.begin == s.end) s.begin = s.end = 0;
      } else if (n == 0) {
        step = s.reader->eof();
      } else if (errno == EINTR) {
        continue;
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return;
      } else {
        return failSlot(s, fail(ErrorCode::kTransient, connectionError(errno)), now);
      }
      if (step == ResponseReader::Step::kError) {
        return failSlot(s, fail(ErrorCode::kTransient, "response: " + s.reader->errorText()), now);
      }
      if (step == ResponseReader::Step::kDone) {
        const bool keep = s.reader->keepAlive() && s.begin == s.end;
        if (!keep) closeSlot(s);
        finish(s, std::move(s.reader->reply()), now);
        s.phase = Phase::kFinished;
        return next(s, now);
      }
      if (static_cast<std::size_t>(n) < room) return;  // drained: wait for more
    }
  }

  void finish(Slot& s, Result<HttpReply> reply, Clock::time_point now) {
    out_[s.request].reply = std::move(reply);
    out_[s.request].elapsed = now - s.started;
  }

  // Records `error` for the slot's request, drops its connection and moves on.
  void failSlot(Slot& s, Result<HttpReply> error, Clock::time_point now) {
    closeSlot(s);
    finish(s, std::move(error), now);
    s.phase = Phase::kFinished;
    next(s, now);
  }

  static void closeSlot(Slot& s) {
    if (s.fd >= 0) ::close(s.fd);
    s.fd = -1;
  }

  HttpClient& client_;
  std::span<const ClientRequest> requests_;
  std::span<ClientExchange> out_;
  const std::chrono::milliseconds timeout_;
  const std::size_t maxBody_;
  std::vector<std::optional<Url>> urls_;
  std::list<Endpoint> endpoints_;  // stable addresses: slots point at them
  std::vector<Slot> slots_;
};

HttpClient::HttpClient(std::chrono::milliseconds maxIdle, std::size_t maxIdlePerEndpoint)
    : maxIdle_(maxIdle), maxIdlePerEndpoint_(maxIdlePerEndpoint) {}

HttpClient::~HttpClient() {
  for (auto& [key, list] : idle_) {
    for (const Idle& i : list) ::close(i.fd);
  }
}

Result<HttpReply> HttpClient::exchange(const ClientRequest& request,
                                       std::chrono::milliseconds timeout, std::size_t maxBody) {
  ClientExchange out;
  exchangeMany(std::span(&request, 1), std::span(&out, 1), timeout, maxBody, 1);
  return std::move(out.reply);
}

void HttpClient::exchangeMany(std::span<const ClientRequest> requests,
                              std::span<ClientExchange> out, std::chrono::milliseconds timeout,
                              std::size_t maxBody, std::size_t maxConnections) {
  ExchangeRun run(*this, requests, out, timeout, maxBody, std::max<std::size_t>(maxConnections, 1));
  run.run();
}

void HttpClient::takeIdle(const std::string& endpoint, std::size_t n, std::vector<int>& out) {
  std::vector<pollfd> fds;
  while (n > 0) {
    fds.clear();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = idle_.find(endpoint);
      if (it == idle_.end()) return;
      const Clock::time_point now = Clock::now();
      while (fds.size() < n && !it->second.empty()) {
        const Idle entry = it->second.back();
        it->second.pop_back();
        // Too old: the server may be about to close it.
        if (now - entry.since > maxIdle_) {
          ::close(entry.fd);
        } else {
          fds.push_back({entry.fd, static_cast<short>(POLLIN | POLLRDHUP), 0});
        }
      }
    }
    if (fds.empty()) return;
    // Closed or written to by the server while it waited (the end of stream or unasked-for bytes
    // make it readable; errors and hang-ups are always reported): not re-used.
    if (::poll(fds.data(), fds.size(), 0) < 0) {
      for (const pollfd& p : fds) ::close(p.fd);
      continue;
    }
    for (const pollfd& p : fds) {
      if (p.revents != 0) {
        ::close(p.fd);
      } else {
        out.push_back(p.fd);
        --n;
      }
    }
  }
}

void HttpClient::giveBack(const std::string& endpoint, int fd) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto& list = idle_[endpoint];
    if (list.size() < maxIdlePerEndpoint_) {
      list.push_back({fd, Clock::now()});
      return;
    }
  }
  ::close(fd);
}

std::size_t HttpClient::idle() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::size_t n = 0;
  for (const auto& [key, list] : idle_) n += list.size();
  return n;
}

}  // namespace switchboard::channels
