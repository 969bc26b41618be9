// bench/floor: the least work any engine must do for bench/e2e's journey on this machine, to put
// the engine's CPU per message beside a floor measured the same way. One thread, one epoll loop,
// no framework: it answers Meta webhooks (X-Hub-Signature-256 checked in constant time, the JSON
// parsed), POSTs one small transaction Bundle per message (the Patient with the sender's phone and
// the webhook as a Binary) to the FHIR base URL over kept, pipelined connections, and after the
// 2xx POSTs the text reply to the Meta send API. No store, no mapping, no MPI, no validation.
// With FLOOR_DURABLE=1 it also appends each webhook to a file and fdatasyncs it once per loop
// turn before answering (a durable intake's floor: group commit at its simplest).
// It takes `switchboard serve`'s environment (SWITCHBOARD_DATA_DIR, SWITCHBOARD_FHIR_BASE_URL,
// SWITCHBOARD_META_APP_SECRET, SWITCHBOARD_META_ACCESS_TOKEN, SWITCHBOARD_META_API_BASE_URL),
// writes its port to <data dir>/switchboard.port and answers /healthz and /metrics (the reply
// count as switchboard_delivery_attempts_total), so bench/e2e/run drives it as SWITCHBOARD_BIN.
// Not part of the engine; a measuring instrument. Single-threaded.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace {

volatile sig_atomic_t stopping = 0;

std::string env(const char* name, const char* fallback = "") {
  const char* v = std::getenv(name);
  return v != nullptr ? v : fallback;
}

struct Url {
  std::string host = "127.0.0.1";
  int port = 80;
  std::string path;  // without a trailing slash
};

Url parseUrl(const std::string& text) {
  Url u;
  std::string rest = text.substr(text.find("://") == std::string::npos ? 0 : text.find("://") + 3);
  auto slash = rest.find('/');
  std::string hostPort = rest.substr(0, slash);
  u.path = slash == std::string::npos ? "" : rest.substr(slash);
  while (!u.path.empty() && u.path.back() == '/') u.path.pop_back();
  auto colon = hostPort.rfind(':');
  u.host = hostPort.substr(0, colon);
  if (colon != std::string::npos) u.port = std::atoi(hostPort.c_str() + colon + 1);
  return u;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

// One HTTP/1.1 message head: start line, Content-Length, chunked, and one named header.
struct Head {
  std::size_t headEnd = 0;  // offset after CRLFCRLF
  std::string_view startLine;
  long contentLength = 0;
  bool chunked = false;
  std::string_view wanted;  // value of the header asked for
};

bool parseHead(std::string_view buf, std::string_view wantedName, Head& h) {
  auto end = buf.find("\r\n\r\n");
  if (end == std::string_view::npos) return false;
  h = Head{};
  h.headEnd = end + 4;
  auto lineEnd = buf.find("\r\n");
  h.startLine = buf.substr(0, lineEnd);
  std::size_t pos = lineEnd + 2;
  while (pos < end) {
    auto eol = buf.find("\r\n", pos);
    std::string_view line = buf.substr(pos, eol - pos);
    pos = eol + 2;
    auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view name = line.substr(0, colon);
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (iequals(name, "content-length"))
      h.contentLength = std::strtol(std::string(value).c_str(), nullptr, 10);
    if (iequals(name, "transfer-encoding") && value.find("chunked") != std::string_view::npos)
      h.chunked = true;
    if (!wantedName.empty() && iequals(name, wantedName)) h.wanted = value;
  }
  return true;
}

// Length of a complete chunked body at `p` (0 while incomplete).
std::size_t chunkedLength(std::string_view buf, std::size_t p) {
  std::size_t start = p;
  for (;;) {
    auto eol = buf.find("\r\n", p);
    if (eol == std::string_view::npos) return 0;
    long size = std::strtol(std::string(buf.substr(p, eol - p)).c_str(), nullptr, 16);
    p = eol + 2;
    if (size == 0) {
      auto end = buf.find("\r\n", p);  // no trailers expected
      return end == std::string_view::npos ? 0 : end + 2 - start;
    }
    if (buf.size() < p + static_cast<std::size_t>(size) + 2) return 0;
    p += static_cast<std::size_t>(size) + 2;
  }
}

enum class Kind { kListener, kInbound, kSink, kVendor };

struct Pending {  // an outbound request awaiting its answer
  std::string request;
  std::string phone, phoneNumberId;
};

struct Conn {
  int fd = -1;
  Kind kind = Kind::kInbound;
  std::string in, out;
  std::deque<Pending> pending;  // outbound: requests sent, answers in this order
  bool wantWrite = false;
};

class Relay {
 public:
  Relay() {
    secret_ = env("SWITCHBOARD_META_APP_SECRET");
    token_ = env("SWITCHBOARD_META_ACCESS_TOKEN");
    fhir_ = parseUrl(env("SWITCHBOARD_FHIR_BASE_URL", "http://127.0.0.1:8103"));
    vendor_ = parseUrl(env("SWITCHBOARD_META_API_BASE_URL", "http://127.0.0.1:9"));
    dataDir_ = env("SWITCHBOARD_DATA_DIR", ".");
    durable_ = env("FLOOR_DURABLE") == "1";
    if (durable_) {
      logFd_ = ::open((dataDir_ + "/floor.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                      0600);
    }
    ep_ = epoll_create1(EPOLL_CLOEXEC);
  }

  int listen(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 1024) != 0)
      return -1;
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    add(fd, Kind::kListener);
    std::ofstream(dataDir_ + "/switchboard.port.tmp") << ntohs(a.sin_port);
    std::rename((dataDir_ + "/switchboard.port.tmp").c_str(),
                (dataDir_ + "/switchboard.port").c_str());
    return ntohs(a.sin_port);
  }

  void run() {
    std::vector<epoll_event> events(256);
    while (!stopping) {
      int n = epoll_wait(ep_, events.data(), static_cast<int>(events.size()), 500);
      for (int i = 0; i < n; ++i) {
        auto it = conns_.find(events[i].data.fd);
        if (it == conns_.end()) continue;
        Conn& c = *it->second;
        if (c.kind == Kind::kListener) {
          acceptAll(c.fd);
          continue;
        }
        if (events[i].events & EPOLLOUT) flushOne(c);
        if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) readable(c);
      }
      endTurn();
    }
  }

 private:
  Conn& add(int fd, Kind kind) {
    auto c = std::make_unique<Conn>();
    c->fd = fd;
    c->kind = kind;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
    Conn& ref = *c;
    conns_[fd] = std::move(c);
    return ref;
  }

  void drop(Conn& c) {
    epoll_ctl(ep_, EPOLL_CTL_DEL, c.fd, nullptr);
    ::close(c.fd);
    Kind kind = c.kind;
    std::deque<Pending> unanswered = std::move(c.pending);
    int fd = c.fd;
    auto& pool = kind == Kind::kSink ? sinkPool_ : vendorPool_;
    for (auto& p : pool) {
      if (p == &c) p = nullptr;
    }
    dirty_.erase(std::remove(dirty_.begin(), dirty_.end(), &c), dirty_.end());
    conns_.erase(fd);
    // A peer that closed a kept connection: what it did not answer is sent again.
    for (auto& p : unanswered) sendOut(kind, std::move(p));
  }

  void acceptAll(int lfd) {
    for (;;) {
      int fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      add(fd, Kind::kInbound);
    }
  }

  void readable(Conn& c) {
    char buf[65536];
    for (;;) {
      ssize_t r = ::recv(c.fd, buf, sizeof buf, 0);
      if (r > 0) {
        c.in.append(buf, static_cast<std::size_t>(r));
        if (static_cast<std::size_t>(r) < sizeof buf) break;
        continue;
      }
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) break;
      drop(c);  // EOF or error
      return;
    }
    if (c.kind == Kind::kInbound) {
      serveRequests(c);
    } else {
      readAnswers(c);
    }
  }

  void serveRequests(Conn& c) {
    std::size_t used = 0;
    for (;;) {
      std::string_view rest(c.in.data() + used, c.in.size() - used);
      Head h;
      if (!parseHead(rest, "x-hub-signature-256", h)) break;
      if (rest.size() < h.headEnd + static_cast<std::size_t>(h.contentLength)) break;
      std::string_view body = rest.substr(h.headEnd, static_cast<std::size_t>(h.contentLength));
      handle(c, h, body);
      used += h.headEnd + static_cast<std::size_t>(h.contentLength);
    }
    c.in.erase(0, used);
  }

  void handle(Conn& c, const Head& h, std::string_view body) {
    std::string_view line = h.startLine;
    if (line.starts_with("GET /healthz")) return answer(c, 200, "ok", false);
    if (line.starts_with("GET /metrics")) {
      return answer(c, 200,
                    "switchboard_delivery_attempts_total{channel=\"whatsapp-meta\",destination="
                    "\"reply\",outcome=\"ok\"} " +
                        std::to_string(replies_) + "\n",
                    false);
    }
    if (!line.starts_with("POST /webhooks/whatsapp")) return answer(c, 404, "", false);
    if (!signatureOk(h.wanted, body)) return answer(c, 401, "", false);
    rapidjson::Document d;
    d.Parse(body.data(), body.size());
    if (d.HasParseError() || !d.IsObject()) return answer(c, 400, "", false);
    if (d.HasMember("entry") && d["entry"].IsArray()) {
      for (auto& entry : d["entry"].GetArray()) {
        if (!entry.IsObject() || !entry.HasMember("changes") || !entry["changes"].IsArray())
          continue;
        for (auto& change : entry["changes"].GetArray()) {
          if (!change.IsObject() || !change.HasMember("value") || !change["value"].IsObject())
            continue;
          const auto& value = change["value"];
          std::string pnid;
          if (value.HasMember("metadata") && value["metadata"].IsObject() &&
              value["metadata"].HasMember("phone_number_id") &&
              value["metadata"]["phone_number_id"].IsString()) {
            pnid = value["metadata"]["phone_number_id"].GetString();
          }
          if (!value.HasMember("messages") || !value["messages"].IsArray()) continue;
          for (auto& m : value["messages"].GetArray()) {
            if (!m.IsObject() || !m.HasMember("from") || !m["from"].IsString()) continue;
            Pending p;
            p.phone = std::string("+") + m["from"].GetString();
            p.phoneNumberId = pnid;
            p.request = bundleRequest(p.phone, body);
            sendOut(Kind::kSink, std::move(p));
          }
        }
      }
    }
    if (durable_) {
      ::write(logFd_, body.data(), body.size());
      return answer(c, 200, "", true);
    }
    answer(c, 200, "", false);
  }

  bool signatureOk(std::string_view header, std::string_view body) const {
    constexpr std::string_view kPrefix = "sha256=";
    if (!header.starts_with(kPrefix) || header.size() != kPrefix.size() + 64) return false;
    unsigned char digest[32];
    unsigned int len = 0;
    HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
         reinterpret_cast<const unsigned char*>(body.data()), body.size(), digest, &len);
    char hex[64];
    static const char* kHex = "0123456789abcdef";
    for (int i = 0; i < 32; ++i) {
      hex[2 * i] = kHex[digest[i] >> 4];
      hex[2 * i + 1] = kHex[digest[i] & 15];
    }
    return CRYPTO_memcmp(hex, header.data() + kPrefix.size(), 64) == 0;
  }

  std::string bundleRequest(const std::string& phone, std::string_view webhook) {
    // The Patient keyed by phone (what the FHIR endpoint times) and the webhook kept as a Binary.
    static const char* kB64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string data;
    data.reserve((webhook.size() + 2) / 3 * 4);
    for (std::size_t i = 0; i < webhook.size(); i += 3) {
      unsigned v = static_cast<unsigned char>(webhook[i]) << 16;
      if (i + 1 < webhook.size()) v |= static_cast<unsigned char>(webhook[i + 1]) << 8;
      if (i + 2 < webhook.size()) v |= static_cast<unsigned char>(webhook[i + 2]);
      data += kB64[(v >> 18) & 63];
      data += kB64[(v >> 12) & 63];
      data += i + 1 < webhook.size() ? kB64[(v >> 6) & 63] : '=';
      data += i + 2 < webhook.size() ? kB64[v & 63] : '=';
    }
    std::string body =
        "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":["
        "{\"fullUrl\":\"urn:uuid:6f1c0b1e-0000-4000-8000-" +
        std::to_string(100000000000ULL + ++sequence_) +
        "\",\"resource\":{\"resourceType\":\"Patient\",\"telecom\":[{\"system\":\"phone\","
        "\"value\":\"" +
        phone +
        "\"}]},\"request\":{\"method\":\"POST\",\"url\":\"Patient\",\"ifNoneExist\":\"telecom=" +
        phone +
        "\"}},{\"resource\":{\"resourceType\":\"Binary\",\"contentType\":\"application/"
        "json\",\"data\":\"" +
        data + "\"},\"request\":{\"method\":\"POST\",\"url\":\"Binary\"}}]}";
    return "POST " + (fhir_.path.empty() ? std::string("/") : fhir_.path + "/") +
           " HTTP/1.1\r\nHost: " + fhir_.host +
           "\r\nContent-Type: application/fhir+json\r\nAccept: "
           "application/fhir+json\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + body;
  }

  std::string replyRequest(const Pending& p) {
    std::string body =
        "{\"messaging_product\":\"whatsapp\",\"recipient_type\":\"individual\",\"to\":\"" +
        p.phone +
        "\",\"type\":\"text\",\"text\":{\"body\":\"Thank you, your appointment request is "
        "confirmed.\"}}";
    return "POST " + vendor_.path + "/v21.0/" + p.phoneNumberId +
           "/messages HTTP/1.1\r\nHost: " + vendor_.host + "\r\nAuthorization: Bearer " + token_ +
           "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n\r\n" + body;
  }

  // Queues `p` on the least loaded kept connection to that peer (four each, pipelined).
  void sendOut(Kind kind, Pending p) {
    const Url& url = kind == Kind::kSink ? fhir_ : vendor_;
    auto& pool = kind == Kind::kSink ? sinkPool_ : vendorPool_;
    Conn* best = nullptr;
    for (auto& slot : pool) {
      if (slot == nullptr) {
        int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(static_cast<uint16_t>(url.port));
        inet_pton(AF_INET, url.host == "localhost" ? "127.0.0.1" : url.host.c_str(), &a.sin_addr);
        if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
          ::close(fd);
          std::fprintf(stderr, "floor: cannot connect to %s:%d\n", url.host.c_str(), url.port);
          return;
        }
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        slot = &add(fd, kind);
      }
      if (best == nullptr || slot->pending.size() < best->pending.size()) best = slot;
    }
    best->out += p.request;
    best->pending.push_back(std::move(p));
    markDirty(*best);
  }

  void readAnswers(Conn& c) {
    std::size_t used = 0;
    for (;;) {
      std::string_view rest(c.in.data() + used, c.in.size() - used);
      Head h;
      if (!parseHead(rest, "", h)) break;
      std::size_t bodyLen = static_cast<std::size_t>(h.contentLength);
      if (h.chunked) {
        bodyLen = chunkedLength(rest, h.headEnd);
        if (bodyLen == 0) break;
      } else if (rest.size() < h.headEnd + bodyLen) {
        break;
      }
      used += h.headEnd + bodyLen;
      if (c.pending.empty()) continue;
      Pending p = std::move(c.pending.front());
      c.pending.pop_front();
      int status = std::atoi(std::string(h.startLine.substr(9, 3)).c_str());
      if (c.kind == Kind::kSink) {
        if (status / 100 == 2) {
          p.request = replyRequest(p);
          sendOut(Kind::kVendor, std::move(p));
        } else {
          ++failures_;
        }
      } else if (status / 100 == 2) {
        ++replies_;
      } else {
        ++failures_;
      }
    }
    c.in.erase(0, used);
  }

  void answer(Conn& c, int status, const std::string& body, bool afterFlush) {
    const char* reason = status == 200   ? "OK"
                         : status == 401 ? "Unauthorized"
                         : status == 404 ? "Not Found"
                                         : "Bad Request";
    std::string text =
        "HTTP/1.1 " + std::to_string(status) + " " + reason +
        "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
        "\r\n\r\n" + body;
    if (afterFlush) {
      held_.emplace_back(c.fd, std::move(text));
      return;
    }
    c.out += text;
    markDirty(c);
  }

  void markDirty(Conn& c) {
    if (c.out.empty()) return;
    if (std::find(dirty_.begin(), dirty_.end(), &c) == dirty_.end()) dirty_.push_back(&c);
  }

  // End of a loop turn: one flush of the intake log for the turn's webhooks, then every
  // connection's queued bytes in one send each.
  void endTurn() {
    if (!held_.empty()) {
      ::fdatasync(logFd_);
      for (auto& [fd, text] : held_) {
        auto it = conns_.find(fd);
        if (it == conns_.end()) continue;
        it->second->out += text;
        markDirty(*it->second);
      }
      held_.clear();
    }
    std::vector<Conn*> now;
    now.swap(dirty_);
    for (Conn* c : now) flushOne(*c);
  }

  void flushOne(Conn& c) {
    while (!c.out.empty()) {
      ssize_t w = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
      if (w > 0) {
        c.out.erase(0, static_cast<std::size_t>(w));
        continue;
      }
      if (w < 0 && errno == EINTR) continue;
      break;
    }
    bool want = !c.out.empty();
    if (want != c.wantWrite) {
      epoll_event ev{};
      ev.events = want ? (EPOLLIN | EPOLLOUT) : EPOLLIN;
      ev.data.fd = c.fd;
      epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
      c.wantWrite = want;
    }
  }

  std::string secret_, token_, dataDir_;
  Url fhir_, vendor_;
  bool durable_ = false;
  int logFd_ = -1;
  int ep_ = -1;
  std::unordered_map<int, std::unique_ptr<Conn>> conns_;
  std::vector<Conn*> sinkPool_ = std::vector<Conn*>(4, nullptr);
  std::vector<Conn*> vendorPool_ = std::vector<Conn*>(4, nullptr);
  std::vector<Conn*> dirty_;
  std::vector<std::pair<int, std::string>> held_;
  unsigned long long sequence_ = 0, replies_ = 0, failures_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  // Accepts `serve [--config FILE]` like the engine; the configuration file is not read.
  if (argc < 2 || std::strcmp(argv[1], "serve") != 0) {
    std::fprintf(stderr, "usage: bench_floor_relay serve [--config IGNORED]\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa {};
  sa.sa_handler = [](int) { stopping = 1; };
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  Relay relay;
  int port = relay.listen(std::atoi(env("SWITCHBOARD_PORT", "0").c_str()));
  if (port < 0) {
    std::perror("floor: listen");
    return 1;
  }
  std::fprintf(stderr, "floor relay listening on 127.0.0.1:%d\n", port);
  relay.run();
  return 0;
}
