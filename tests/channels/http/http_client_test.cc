// HttpClient against byte-exact loopback servers (a raw socket per connection, one thread each):
// framing (Content-Length, chunked, until close), responses cut into one-byte segments, keep-alive
// rules, body limit, and exchangeMany's per-request results, timeouts and connection sharing.
#include <boost/test/unit_test.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "channels/http/http_client.h"
#include "tests/channels/http/raw_server.h"

namespace sc = switchboard::channels;
using switchboard::ErrorCode;
using namespace std::chrono_literals;

using switchboard::testing::answering;
using switchboard::testing::bodyOf;
using switchboard::testing::okResponse;
using switchboard::testing::RawServer;
using switchboard::testing::readRequest;
using switchboard::testing::writeAll;

namespace {

sc::ClientRequest post(const std::string& url, std::string_view body) {
  sc::ClientRequest r;
  r.url = url;
  r.body = body;
  return r;
}

// One empty POST to `url`: checks the answer's body and the connections the client keeps after.
void expectAnswer(sc::HttpClient& client, const std::string& url, const std::string& body,
                  std::size_t idle) {
  auto reply = client.exchange(post(url, ""), 5000ms, 1 << 20);
  BOOST_REQUIRE(reply.has_value());
  BOOST_TEST(reply->body == body);
  BOOST_TEST(client.idle() == idle);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(http_client)

BOOST_AUTO_TEST_CASE(request_bytes_and_content_length_reply_on_a_kept_connection) {
  RawServer server(
      answering([](const std::string&) { return okResponse("{\"ok\":true}", "X-Thing: a\r\n"); }));
  sc::HttpClient client;
  const std::vector<switchboard::core::HttpHeader> headers = {{"Content-Type", "application/json"},
                                                              {"content-length", "999"}};
  const std::string url = server.url("/fhir/R4?x=1");
  sc::ClientRequest request = post(url, "{\"a\":1}");
  request.headers = headers;
  auto first = client.exchange(request, 2000ms, 1 << 20);
  BOOST_REQUIRE(first.has_value());
  BOOST_TEST(first->status == 200);
  BOOST_TEST(first->reason == "OK");
  BOOST_TEST(first->body == "{\"ok\":true}");
  BOOST_REQUIRE(first->header("x-THING") != nullptr);  // names compare case-insensitively
  BOOST_TEST(*first->header("x-THING") == "a");
  BOOST_TEST(client.idle() == 1u);
  auto second = client.exchange(request, 2000ms, 1 << 20);
  BOOST_REQUIRE(second.has_value());
  BOOST_TEST(server.connections() == 1u);  // the second exchange re-used the first connection
  const auto seen = server.requests();
  BOOST_REQUIRE(seen.size() == 2u);
  BOOST_TEST(seen[0] ==
             "POST /fhir/R4?x=1 HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(server.port()) +
                 "\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}");
}

BOOST_AUTO_TEST_CASE(chunked_reply_in_one_byte_segments) {
  const std::string chunked =
      "HTTP/1.1 100 Continue\r\n\r\n"
      "HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\nLocation: Patient/1\r\n\r\n"
      "5;ext=1\r\nhello\r\n1A\r\n abcdefghijklmnopqrstuvwxy\r\n0\r\nX-Trailer: t\r\n\r\n";
  RawServer server(answering([&](const std::string&) { return chunked; }, /*slowly=*/true));
  sc::HttpClient client;
  const std::string url = server.url("/");
  for (int i = 0; i < 2; ++i) {
    auto reply = client.exchange(post(url, "x"), 5000ms, 1 << 20);
    BOOST_REQUIRE(reply.has_value());
    BOOST_TEST(reply->status == 201);
    BOOST_TEST(reply->body == "hello abcdefghijklmnopqrstuvwxy");
    BOOST_REQUIRE(reply->header("location") != nullptr);
    BOOST_TEST(*reply->header("location") == "Patient/1");
  }
  BOOST_TEST(server.connections() == 1u);
  BOOST_TEST(client.idle() == 1u);
}

BOOST_AUTO_TEST_CASE(content_length_reply_in_one_byte_segments) {
  RawServer server(
      answering([](const std::string& r) { return okResponse("echo:" + bodyOf(r)); }, true));
  sc::HttpClient client;
  auto reply = client.exchange(post(server.url("/"), "abc"), 5000ms, 1 << 20);
  BOOST_REQUIRE(reply.has_value());
  BOOST_TEST(reply->body == "echo:abc");
  BOOST_TEST(client.idle() == 1u);
}

BOOST_AUTO_TEST_CASE(connection_close_and_http10_are_not_kept) {
  RawServer server(answering([](const std::string& r) {
    if (r.starts_with("POST /close ")) return okResponse("c", "Connection: close\r\n");
    if (r.starts_with("POST /http10keep ")) {
      return std::string("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\nk");
    }
    return std::string("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nz");
  }));
  sc::HttpClient client;
  expectAnswer(client, server.url("/close"), "c", 0);
  expectAnswer(client, server.url("/http10"), "z", 0);
  expectAnswer(client, server.url("/http10keep"), "k", 1);
}

BOOST_AUTO_TEST_CASE(body_until_close) {
  RawServer server([](int fd, RawServer&) {
    std::string pending;
    if (readRequest(fd, pending)) writeAll(fd, "HTTP/1.1 200 OK\r\n\r\nall of it", true);
  });
  sc::HttpClient client;
  expectAnswer(client, server.url("/"), "all of it", 0);
}

BOOST_AUTO_TEST_CASE(server_closing_an_idle_connection_gets_a_fresh_one) {
  // Answers one request per connection, keep-alive allowed, then closes while the client idles.
  RawServer server([](int fd, RawServer&) {
    std::string pending;
    if (readRequest(fd, pending)) writeAll(fd, okResponse("one"));
  });
  sc::HttpClient client;
  auto first = client.exchange(post(server.url("/"), ""), 2000ms, 1 << 20);
  BOOST_REQUIRE(first.has_value());
  BOOST_TEST(client.idle() == 1u);
  // Wait until the server has shut the connection down (its FIN is then on the idle socket).
  for (int i = 0; i < 400 && server.finished() == 0; ++i) std::this_thread::sleep_for(5ms);
  BOOST_REQUIRE(server.finished() == 1u);
  auto second = client.exchange(post(server.url("/"), ""), 2000ms, 1 << 20);
  BOOST_REQUIRE(second.has_value());
  BOOST_TEST(second->body == "one");
  BOOST_TEST(server.connections() == 2u);
}

BOOST_AUTO_TEST_CASE(a_batch_checks_its_kept_connections_together_and_replaces_the_closed_ones) {
  // The first two connections answer once and close; the others stay open.
  std::atomic<int> accepted{0};
  RawServer server([&](int fd, RawServer&) {
    const bool once = accepted.fetch_add(1) < 2;
    std::string pending;
    while (auto request = readRequest(fd, pending)) {
      writeAll(fd, okResponse("echo:" + bodyOf(*request)));
      if (once) return;
    }
  });
  sc::HttpClient client;
  const std::string url = server.url("/");
  auto batch = [&](const std::string& tag) {
    std::vector<std::string> bodies;
    for (int i = 0; i < 4; ++i) bodies.push_back(tag + std::to_string(i));
    std::vector<sc::ClientRequest> requests;
    for (const auto& b : bodies) requests.push_back(post(url, b));
    std::vector<sc::ClientExchange> out(requests.size());
    client.exchangeMany(requests, out, 5000ms, 1 << 20, 4);
    for (std::size_t i = 0; i < out.size(); ++i) {
      BOOST_REQUIRE(out[i].reply.has_value());
      BOOST_TEST(out[i].reply->body == "echo:" + bodies[i]);
    }
  };
  batch("a");
  BOOST_TEST(server.connections() == 4u);
  BOOST_TEST(client.idle() == 4u);
  for (int i = 0; i < 400 && server.finished() < 2; ++i) std::this_thread::sleep_for(5ms);
  BOOST_REQUIRE(server.finished() == 2u);
  // Two of the four kept connections are closed: they are dropped, two new ones replace them, and
  // no request is sent on a dead connection (each would fail, not be answered).
  batch("b");
  BOOST_TEST(server.connections() == 6u);
  BOOST_TEST(client.idle() == 4u);
}

BOOST_AUTO_TEST_CASE(body_over_the_limit_is_cut_and_not_kept) {
  RawServer server(
      answering([](const std::string&) { return okResponse(std::string(100000, 'x')); }));
  sc::HttpClient client;
  auto reply = client.exchange(post(server.url("/"), ""), 2000ms, 1000);
  BOOST_REQUIRE(reply.has_value());
  BOOST_TEST(reply->body.size() == 1000u);
  BOOST_TEST(client.idle() == 0u);
}

BOOST_AUTO_TEST_CASE(malformed_reply_and_early_close_are_transient) {
  RawServer server([](int fd, RawServer&) {
    std::string pending;
    auto request = readRequest(fd, pending);
    if (request && request->starts_with("POST /garbage ")) writeAll(fd, "SMTP ready\r\n\r\n");
    if (request && request->starts_with("POST /cut "))
      writeAll(fd, okResponse("0123456789").substr(0, 45));
  });
  sc::HttpClient client;
  for (const char* path : {"/garbage", "/cut", "/nothing"}) {
    auto reply = client.exchange(post(server.url(path), ""), 2000ms, 1 << 20);
    BOOST_REQUIRE(!reply.has_value());
    BOOST_TEST((reply.error().code == ErrorCode::kTransient), path);
  }
  BOOST_TEST(client.idle() == 0u);
}

BOOST_AUTO_TEST_CASE(refused_connection_fails_each_exchange) {
  int port = 0;
  {
    RawServer closed([](int, RawServer&) {});
    port = closed.port();
  }
  sc::HttpClient client;
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/";
  std::vector<sc::ClientRequest> requests(3, post(url, "x"));
  std::vector<sc::ClientExchange> out(3);
  client.exchangeMany(requests, out, 2000ms, 1 << 20);
  for (const auto& o : out) {
    BOOST_REQUIRE(!o.reply.has_value());
    BOOST_TEST((o.reply.error().code == ErrorCode::kTransient));
    BOOST_TEST(o.reply.error().message.find("refused") != std::string::npos);
  }
  sc::ClientExchange https;
  sc::ClientRequest secure = post("https://127.0.0.1/", "");
  client.exchangeMany(std::span(&secure, 1), std::span(&https, 1), 2000ms, 1 << 20);
  BOOST_TEST((!https.reply.has_value() && https.reply.error().code == ErrorCode::kNotSupported));
}

BOOST_AUTO_TEST_CASE(a_silent_peer_times_out_alone) {
  // /hang is read and never answered; the others are answered at once.
  RawServer server([](int fd, RawServer& s) {
    std::string pending;
    while (auto request = readRequest(fd, pending)) {
      s.record(*request);
      if (request->starts_with("POST /hang ")) {
        char byte;
        while (::recv(fd, &byte, 1, 0) > 0) {
        }
        return;
      }
      writeAll(fd, okResponse("echo:" + bodyOf(*request)));
    }
  });
  sc::HttpClient client;
  const std::string ok = server.url("/ok");
  const std::string hang = server.url("/hang");
  const std::vector<std::string> bodies = {"0", "1", "2", "3", "4", "5"};
  std::vector<sc::ClientRequest> requests;
  for (std::size_t i = 0; i < bodies.size(); ++i)
    requests.push_back(post(i == 2 ? hang : ok, bodies[i]));
  std::vector<sc::ClientExchange> out(requests.size());
  client.exchangeMany(requests, out, 300ms, 1 << 20, 3);
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (i == 2) {
      BOOST_REQUIRE(!out[i].reply.has_value());
      BOOST_TEST((out[i].reply.error().code == ErrorCode::kTimeout));
      BOOST_TEST(out[i].elapsed >= 300ms);
    } else {
      BOOST_REQUIRE(out[i].reply.has_value());
      BOOST_TEST(out[i].reply->body == "echo:" + bodies[i]);
    }
  }
}

BOOST_AUTO_TEST_CASE(many_exchanges_share_fewer_connections_concurrently) {
  // Holds every answer until four requests wait at once: a client sending one at a time would
  // leave the barrier to time out, and its answers would say so.
  std::mutex mutex;
  std::condition_variable changed;
  int waiting = 0;
  int released = 0;
  RawServer server([&](int fd, RawServer& s) {
    std::string pending;
    while (auto request = readRequest(fd, pending)) {
      s.record(*request);
      bool together;
      {
        std::unique_lock<std::mutex> lock(mutex);
        ++waiting;
        changed.notify_all();
        together =
            changed.wait_for(lock, 5s, [&] { return waiting - released >= 4 || released > 0; });
        if (together && released == 0) released = 1;
      }
      writeAll(fd, okResponse((together ? "together:" : "alone:") + bodyOf(*request)));
    }
  });
  sc::HttpClient client;
  const std::string url = server.url("/");
  std::vector<std::string> bodies;
  for (int i = 0; i < 20; ++i) bodies.push_back(std::to_string(i));
  std::vector<sc::ClientRequest> requests;
  for (const auto& b : bodies) requests.push_back(post(url, b));
  std::vector<sc::ClientExchange> out(requests.size());
  client.exchangeMany(requests, out, 10000ms, 1 << 20, 4);
  for (std::size_t i = 0; i < out.size(); ++i) {
    BOOST_REQUIRE(out[i].reply.has_value());
    BOOST_TEST(out[i].reply->body ==
               "together:" + bodies[i]);  // each answer matched to its request
  }
  BOOST_TEST(server.connections() == 4u);
  BOOST_TEST(server.requests().size() == 20u);
  BOOST_TEST(client.idle() == 4u);
}

BOOST_AUTO_TEST_CASE(plain_http_urls) {
  BOOST_TEST(sc::isPlainHttpUrl("http://127.0.0.1:8080/fhir"));
  BOOST_TEST(sc::isPlainHttpUrl("HTTP://ehr.example"));
  BOOST_TEST(sc::isPlainHttpUrl("http://[::1]:9/x"));
  BOOST_TEST(!sc::isPlainHttpUrl("https://ehr.example/fhir"));
  BOOST_TEST(!sc::isPlainHttpUrl("http://user:pw@ehr.example/"));
  BOOST_TEST(!sc::isPlainHttpUrl("http://ehr.example:99999/"));
  BOOST_TEST(!sc::isPlainHttpUrl("http:///path"));
}

BOOST_AUTO_TEST_SUITE_END()
