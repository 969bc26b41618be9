// The event-driven HTTP server: the incremental request parser (every split point, pipelining,
// chunked bodies, limits, malformed input) and the server over loopback sockets with a scripted
// router (answers in order, 100-continue, 404/413/431/505, timeouts, connection limit, graceful
// stop answering requests in flight).
#define BOOST_TEST_MODULE http_server
#include <boost/test/unit_test.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/runtime/http_parser.h"
#include "engine/runtime/http_server.h"

using namespace switchboard;
using runtime::HttpRequestParser;
using Status = HttpRequestParser::Status;

namespace {

struct Parsed {
  std::string method, target, body;
  bool keepAlive = true;
  bool expectContinue = false;
};

struct ParseRun {
  std::vector<Parsed> requests;
  int errorStatus = 0;
};

// Feeds `chunks` one after another into one connection's buffer, as a server would.
ParseRun parseChunks(const std::vector<std::string>& chunks, std::size_t bodyLimit = 1 << 20,
                     runtime::HttpParserLimits limits = {}) {
  ParseRun run;
  HttpRequestParser parser(limits);
  std::string buffer;
  for (const auto& chunk : chunks) {
    buffer += chunk;
    for (;;) {
      std::size_t used = 0;
      Status s = parser.parse(buffer, used);
      buffer.erase(0, used);
      if (s == Status::kNeedMore) break;
      if (s == Status::kError) {
        run.errorStatus = parser.errorStatus();
        return run;
      }
      if (s == Status::kHead) {
        parser.acceptBody(bodyLimit);
        continue;
      }
      const auto& h = parser.head();
      run.requests.push_back({h.method, h.target, parser.body(), h.keepAlive, h.expectContinue});
      parser.reset();
    }
  }
  return run;
}

ParseRun parseText(const std::string& text, std::size_t bodyLimit = 1 << 20,
                   runtime::HttpParserLimits limits = {}) {
  return parseChunks({text}, bodyLimit, limits);
}

const std::string kPipeline =
    "POST /in/a?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n{\"id\":\"p1\"}"
    "POST /in/b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    "4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nTrailer: t\r\n\r\n"
    "GET /healthz HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";

void checkPipeline(const ParseRun& run) {
  BOOST_REQUIRE_EQUAL(run.errorStatus, 0);
  BOOST_REQUIRE_EQUAL(run.requests.size(), 3u);
  BOOST_TEST(run.requests[0].method == "POST");
  BOOST_TEST(run.requests[0].target == "/in/a?x=1");
  BOOST_TEST(run.requests[0].body == "{\"id\":\"p1\"}");
  BOOST_TEST(run.requests[1].target == "/in/b");
  BOOST_TEST(run.requests[1].body == "Wikipedia in\r\n\r\nchunks.");
  BOOST_TEST(run.requests[2].method == "GET");
  BOOST_TEST(run.requests[2].body.empty());
  BOOST_TEST(run.requests[0].keepAlive);
  BOOST_TEST(!run.requests[2].keepAlive);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(parser)

BOOST_AUTO_TEST_CASE(pipelined_requests_parse_alike_at_every_split_point) {
  checkPipeline(parseText(kPipeline));
  for (std::size_t k = 1; k < kPipeline.size(); ++k) {
    BOOST_TEST_CONTEXT("split at " << k) {
      checkPipeline(parseChunks({kPipeline.substr(0, k), kPipeline.substr(k)}));
    }
  }
  std::vector<std::string> bytes;
  for (char c : kPipeline) bytes.emplace_back(1, c);
  checkPipeline(parseChunks(bytes));
}

BOOST_AUTO_TEST_CASE(line_feeds_alone_and_leading_blank_lines_are_tolerated) {
  auto run = parseText("\r\n\nPOST /a HTTP/1.1\nContent-Length: 2\n\nok");
  BOOST_REQUIRE_EQUAL(run.requests.size(), 1u);
  BOOST_TEST(run.requests[0].body == "ok");
}

BOOST_AUTO_TEST_CASE(version_and_connection_header_decide_keep_alive) {
  BOOST_TEST(!parseText("GET / HTTP/1.0\r\n\r\n").requests.at(0).keepAlive);
  BOOST_TEST(
      parseText("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").requests.at(0).keepAlive);
  BOOST_TEST(
      !parseText("GET / HTTP/1.1\r\nConnection: upgrade, close\r\n\r\n").requests.at(0).keepAlive);
  BOOST_TEST(parseText("GET / HTTP/1.1\r\n\r\n").requests.at(0).keepAlive);
}

BOOST_AUTO_TEST_CASE(expect_continue_is_reported) {
  auto run = parseText("POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\nx");
  BOOST_TEST(run.requests.at(0).expectContinue);
  BOOST_TEST(parseText("POST / HTTP/1.1\r\nExpect: something\r\n\r\n").errorStatus == 417);
}

BOOST_AUTO_TEST_CASE(malformed_input_is_refused_with_a_precise_status) {
  const std::map<std::string, int> cases = {
      {"GET /\r\n\r\n", 400},
      {"GET  / HTTP/1.1\r\n\r\n", 400},
      {"G(T / HTTP/1.1\r\n\r\n", 400},
      {"GET / HTTP/1.x\r\n\r\n", 400},
      {"GET / FTP/1.1\r\n\r\n", 400},
      {"GET / HTTP/2.0\r\n\r\n", 505},
      {"GET / HTTP/0.9\r\n\r\n", 505},
      {"GET / HTTP/1.1\r\nNo colon here\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nA: 1\r\n folded\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nA: x\001y\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n", 400},
  };
  for (const auto& [text, status] : cases) {
    BOOST_TEST_CONTEXT(text) { BOOST_TEST(parseText(text).errorStatus == status); }
  }
  // The same length twice is allowed.
  BOOST_TEST(parseText("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx")
                 .requests.size() == 1u);
}

BOOST_AUTO_TEST_CASE(limits_on_request_line_headers_and_body) {
  runtime::HttpParserLimits limits;
  limits.maxRequestLine = 64;
  limits.maxHeaderBytes = 256;
  limits.maxHeaders = 4;
  // Refused as soon as the limit is passed, without waiting for the end of the line.
  BOOST_TEST(parseText("GET /" + std::string(100, 'a'), 1024, limits).errorStatus == 414);
  BOOST_TEST(parseText("GET / HTTP/1.1\r\nA: " + std::string(300, 'a'), 1024, limits).errorStatus ==
             431);
  BOOST_TEST(
      parseText("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n", 1024, limits)
          .errorStatus == 431);
  BOOST_TEST(parseText("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", 1024, limits)
                 .requests.size() == 1u);
  BOOST_TEST(parseText("POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n", 10).errorStatus == 413);
  BOOST_TEST(parseText("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", 10)
                 .errorStatus == 413);
  BOOST_TEST(parseText("POST / HTTP/1.1\r\nTransfer-Encoding: "
                       "chunked\r\n\r\n6\r\nabcdef\r\n6\r\nghijkl\r\n0\r\n\r\n",
                       10)
                 .errorStatus == 413);
  BOOST_TEST(parseText("POST / HTTP/1.1\r\nTransfer-Encoding: "
                       "chunked\r\n\r\n5\r\nabcde\r\n5\r\nfghij\r\n0\r\n\r\n",
                       10)
                 .requests.at(0)
                 .body == "abcdefghij");
}

BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------------------------------------

namespace {

// A router scripted by the test. Paths:
//   /echo      answers at once (asynchronously) with method, url, a header and the body
//   /hold      keeps the completion until the test releases it
//   /block     left to handle() on the worker pool
//   /small     body limit 10
//   anything else: 404
class ScriptedRouter final : public runtime::HttpRouter {
 public:
  std::optional<std::size_t> bodyLimit(const std::string& path) const override {
    if (path == "/small") return 10;
    if (path == "/echo" || path == "/hold" || path == "/block") return 1 << 16;
    return std::nullopt;
  }
  core::HttpResponse handle(const core::HttpRequest& request) override {
    return core::HttpResponse::text(200, "blocking " + request.body);
  }
  bool handleAsync(core::HttpRequest& request, runtime::HttpCompletion& done) override {
    if (request.path == "/echo") {
      const std::string* custom = request.header("x-CUSTOM");
      done(core::HttpResponse::text(200, request.method + " " + request.url() + " " +
                                             (custom ? *custom : "-") + " " + request.body));
      return true;
    }
    if (request.path == "/hold") {
      std::lock_guard<std::mutex> lock(mutex_);
      held_.push_back({request.body, std::move(done)});
      changed_.notify_all();
      return true;
    }
    return false;
  }
  void rejectedBeforeBody(const std::string& path, int status) override {
    std::lock_guard<std::mutex> lock(mutex_);
    rejected_.push_back(path + " " + std::to_string(status));
  }

  // Waits until `n` requests are held, then takes them.
  std::vector<std::pair<std::string, runtime::HttpCompletion>> takeHeld(std::size_t n) {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return held_.size() >= n; });
    auto out = std::move(held_);
    held_.clear();
    return out;
  }
  std::vector<std::string> rejected() {
    std::lock_guard<std::mutex> lock(mutex_);
    return rejected_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::pair<std::string, runtime::HttpCompletion>> held_;
  std::vector<std::string> rejected_;
};

struct Response {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

// A blocking loopback client reading responses off one connection.
class Client {
 public:
  explicit Client(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{20, 0};  // a safety net for a broken server, not a synchronisation
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    BOOST_REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  }
  ~Client() { ::close(fd_); }

  void send(const std::string& bytes) {
    std::size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return;  // the server may have closed; reading will tell
      done += static_cast<std::size_t>(n);
    }
  }

  // Reads one response; status 0 when the connection ended first.
  Response read() {
    Response r;
    std::size_t end;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) return r;
    }
    std::string head = buffer_.substr(0, end);
    buffer_.erase(0, end + 4);
    r.status = std::stoi(head.substr(9, 3));
    std::size_t pos = head.find("\r\n");
    while (pos != std::string::npos) {
      std::size_t next = head.find("\r\n", pos + 2);
      std::string line =
          head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
      std::size_t colon = line.find(':');
      std::string name = line.substr(0, colon);
      for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      r.headers[name] = line.substr(colon + 2);
      pos = next;
    }
    std::size_t length =
        r.headers.count("content-length") ? std::stoul(r.headers["content-length"]) : 0;
    while (buffer_.size() < length) {
      if (!fill()) return Response{};
    }
    r.body = buffer_.substr(0, length);
    buffer_.erase(0, length);
    return r;
  }

  // True when the server closed the connection (after any unread bytes).
  bool closedByServer() {
    while (fill()) {
    }
    return eof_;
  }

 private:
  bool fill() {
    char buf[4096];
    ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) {
      eof_ = n == 0 || errno == ECONNRESET;
      return false;
    }
    buffer_.append(buf, static_cast<std::size_t>(n));
    return true;
  }
  int fd_;
  std::string buffer_;
  bool eof_ = false;
};

std::string post(const std::string& path, const std::string& body, const std::string& extra = "") {
  return "POST " + path + " HTTP/1.1\r\nHost: example.org:8080\r\n" + extra +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

struct ServerFixture {
  ScriptedRouter router;
  std::unique_ptr<runtime::HttpServer> server;

  explicit ServerFixture(runtime::HttpServerOptions options = {}) {
    options.bind = "127.0.0.1";
    options.port = 0;
    server = std::make_unique<runtime::HttpServer>(router, options);
    server->start();
  }
  int port() const { return server->port(); }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(server)

BOOST_AUTO_TEST_CASE(answers_with_url_headers_and_body_and_keeps_the_connection) {
  ServerFixture f;
  Client c(f.port());
  c.send(post("/echo?a=1", "hello", "X-Custom: v1\r\n"));
  auto r = c.read();
  BOOST_TEST(r.status == 200);
  BOOST_TEST(r.body == "POST http://example.org:8080/echo?a=1 v1 hello");
  c.send(post("/echo", "again", "X-Forwarded-Proto: https\r\n"));
  r = c.read();
  BOOST_TEST(r.body == "POST https://example.org:8080/echo - again");
  c.send("GET /block HTTP/1.1\r\nHost: h\r\n\r\n");
  BOOST_TEST(c.read().body == "blocking ");
  c.send("GET /ec%68o HTTP/1.1\r\nHost: h\r\n\r\n");  // the path is percent-decoded
  BOOST_TEST(c.read().body == "GET http://h/echo - ");
}

BOOST_AUTO_TEST_CASE(pipelined_requests_are_answered_in_order_whatever_order_they_complete_in) {
  ServerFixture f;
  Client c(f.port());
  c.send(post("/hold", "one") + post("/hold", "two") + post("/block", "three") +
         post("/hold", "four") + post("/echo", "five"));
  auto held = f.router.takeHeld(3);
  BOOST_REQUIRE_EQUAL(held.size(), 3u);
  // Complete from another thread, last first.
  std::thread t([&] {
    for (auto it = held.rbegin(); it != held.rend(); ++it)
      it->second(core::HttpResponse::text(200, it->first));
  });
  t.join();
  std::vector<std::string> bodies;
  for (int i = 0; i < 5; ++i) bodies.push_back(c.read().body);
  BOOST_TEST(bodies == (std::vector<std::string>{"one", "two", "blocking three", "four",
                                                 "POST http://example.org:8080/echo - five"}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_request_sent_one_byte_at_a_time_is_answered) {
  ServerFixture f;
  Client c(f.port());
  std::string request = post("/echo", "{\"id\":1}");
  for (char ch : request) c.send(std::string(1, ch));
  BOOST_TEST(c.read().body == "POST http://example.org:8080/echo - {\"id\":1}");
}

BOOST_AUTO_TEST_CASE(chunked_body_and_expect_continue) {
  ServerFixture f;
  Client c(f.port());
  c.send(
      "POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
      "chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
  BOOST_TEST(c.read().body == "POST http://h/echo - abcde");
  c.send("POST /echo HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
  auto interim = c.read();
  BOOST_TEST(interim.status == 100);
  c.send("body");
  auto r = c.read();
  BOOST_TEST(r.status == 200);
  BOOST_TEST(r.body == "POST http://h/echo - body");
  // Over the limit: 413 at once, without 100 Continue, and the body is never read.
  c.send("POST /small HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n");
  r = c.read();
  BOOST_TEST(r.status == 413);
  BOOST_TEST(r.body.find("too-long") != std::string::npos);
  BOOST_TEST(r.headers["connection"] == "close");
  BOOST_TEST(c.closedByServer());
  BOOST_TEST(f.router.rejected() == std::vector<std::string>{"/small 413"},
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(body_over_the_limit_is_refused_from_content_length_or_while_chunked) {
  ServerFixture f;
  {
    Client c(f.port());
    c.send(post("/small", std::string(5000, 'x')));
    auto r = c.read();
    BOOST_TEST(r.status == 413);
    BOOST_TEST(r.body.find("5000 bytes exceeds the limit of 10 bytes") != std::string::npos);
    BOOST_TEST(c.closedByServer());
  }
  {
    Client c(f.port());
    c.send(
        "POST /small HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
        "chunked\r\n\r\n8\r\n12345678\r\n8\r\n12345678\r\n");
    BOOST_TEST(c.read().status == 413);
    BOOST_TEST(c.closedByServer());
  }
  BOOST_TEST(f.router.rejected().size() == 2u);
}

BOOST_AUTO_TEST_CASE(unknown_path_is_404_and_the_connection_stays_usable) {
  ServerFixture f;
  Client c(f.port());
  c.send(post("/nowhere", "{\"a\":1}") + "GET /echo HTTP/1.1\r\nHost: h\r\n\r\n");
  auto r = c.read();
  BOOST_TEST(r.status == 404);
  BOOST_TEST(r.headers["content-type"] == "application/fhir+json");
  BOOST_TEST(r.body.find("no channel or endpoint serves /nowhere") != std::string::npos);
  BOOST_TEST(c.read().status == 200);
  // Waiting for 100 Continue on an unknown path: the 404 comes at once, then the connection ends.
  c.send("POST /nowhere HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
  BOOST_TEST(c.read().status == 404);
  BOOST_TEST(c.closedByServer());
}

BOOST_AUTO_TEST_CASE(malformed_requests_get_precise_errors_and_a_close) {
  ServerFixture f;
  const std::vector<std::pair<std::string, int>> cases = {
      {"GET /echo\r\n\r\n", 400},
      {"GET /echo HTTP/2.0\r\nHost: h\r\n\r\n", 505},
      {"GET /echo HTTP/1.1\r\nHost: h\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n", 431},
      {"GET /%zz HTTP/1.1\r\nHost: h\r\n\r\n", 400},
  };
  for (const auto& [text, status] : cases) {
    Client c(f.port());
    c.send(text);
    auto r = c.read();
    BOOST_TEST(r.status == status);
    BOOST_TEST(r.body.find("OperationOutcome") != std::string::npos);
    BOOST_TEST(c.closedByServer());
  }
}

BOOST_AUTO_TEST_CASE(http_1_0_and_connection_close_end_the_connection_after_the_answer) {
  ServerFixture f;
  {
    Client c(f.port());
    c.send("GET /echo HTTP/1.0\r\n\r\n");
    auto r = c.read();
    BOOST_TEST(r.status == 200);
    BOOST_TEST(r.headers["connection"] == "close");
    BOOST_TEST(c.closedByServer());
  }
  {
    Client c(f.port());
    c.send(
        "GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /echo HTTP/1.1\r\nConnection: "
        "close\r\n\r\n");
    BOOST_TEST(c.read().headers["connection"] == "keep-alive");
    BOOST_TEST(c.read().status == 200);
    BOOST_TEST(c.closedByServer());
  }
}

BOOST_AUTO_TEST_CASE(idle_connections_and_slow_heads_time_out) {
  runtime::HttpServerOptions o;
  o.idleTimeoutMs = 100;
  o.headerTimeoutMs = 150;
  ServerFixture f(o);
  Client idle(f.port());
  Client slow(f.port());
  slow.send("GET /echo HTTP/1.1\r\nHost: h\r\n");  // a head that never ends
  BOOST_TEST(idle.closedByServer());
  auto r = slow.read();
  BOOST_TEST(r.status == 408);
  BOOST_TEST(slow.closedByServer());
}

BOOST_AUTO_TEST_CASE(connections_beyond_the_limit_get_503) {
  runtime::HttpServerOptions o;
  o.maxConnections = 2;
  ServerFixture f(o);
  Client a(f.port());
  Client b(f.port());
  a.send("GET /echo HTTP/1.1\r\n\r\n");
  b.send("GET /echo HTTP/1.1\r\n\r\n");
  BOOST_TEST(a.read().status == 200);  // both accepted and counted
  BOOST_TEST(b.read().status == 200);
  Client c(f.port());
  auto r = c.read();
  BOOST_TEST(r.status == 503);
  BOOST_TEST(c.closedByServer());
}

BOOST_AUTO_TEST_CASE(stop_answers_requests_in_flight_and_closes_idle_connections) {
  ServerFixture f;
  Client idle(f.port());
  idle.send("GET /echo HTTP/1.1\r\n\r\n");
  BOOST_REQUIRE(idle.read().status == 200);
  Client busy(f.port());
  busy.send(post("/hold", "in flight"));
  auto held = f.router.takeHeld(1);
  std::thread stopper([&] { f.server->stop(); });
  BOOST_TEST(idle.closedByServer());  // the drain has begun
  held[0].second(core::HttpResponse::text(200, "answered"));
  auto r = busy.read();
  BOOST_TEST(r.status == 200);
  BOOST_TEST(r.body == "answered");
  BOOST_TEST(r.headers["connection"] == "close");
  BOOST_TEST(busy.closedByServer());
  stopper.join();
}

BOOST_AUTO_TEST_CASE(many_connections_and_two_io_threads) {
  runtime::HttpServerOptions o;
  o.ioThreads = 2;
  ServerFixture f(o);
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 50; ++i) clients.push_back(std::make_unique<Client>(f.port()));
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 50; ++i) clients[i]->send(post("/echo", std::to_string(i)));
    for (int i = 0; i < 50; ++i) {
      BOOST_TEST(clients[i]->read().body ==
                 "POST http://example.org:8080/echo - " + std::to_string(i));
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
