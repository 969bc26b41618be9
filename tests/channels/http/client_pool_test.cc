// ClientPool against a real Poco HTTP server on loopback: which exchanges leave a connection for
// re-use, and that a re-used connection really is the same TCP connection (the server sees the
// same client port).
#define BOOST_TEST_MODULE channel_http
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <mutex>
#include <set>
#include <string>

#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/StreamCopier.h>

#include "channels/http/client_pool.h"

namespace sc = switchboard::channels;
using namespace std::chrono_literals;

namespace {

// Answers `/ok` with a short body, `/close` with Connection: close, `/big` with 100 KB; records the
// client port of every request.
struct Server {
  std::mutex mutex;
  std::multiset<int> ports;

  class Handler final : public Poco::Net::HTTPRequestHandler {
   public:
    explicit Handler(Server& s) : s_(s) {}
    void handleRequest(Poco::Net::HTTPServerRequest& in, Poco::Net::HTTPServerResponse& out) override {
      std::string ignored;
      Poco::StreamCopier::copyToString(in.stream(), ignored);
      {
        std::lock_guard<std::mutex> lock(s_.mutex);
        s_.ports.insert(in.clientAddress().port());
      }
      std::string body = in.getURI() == "/big" ? std::string(100000, 'x') : "{\"ok\":true}";
      if (in.getURI() == "/close") out.setKeepAlive(false);
      out.setContentLength(static_cast<std::streamsize>(body.size()));
      out.send() << body;
    }

   private:
    Server& s_;
  };
  class Factory final : public Poco::Net::HTTPRequestHandlerFactory {
   public:
    explicit Factory(Server& s) : s_(s) {}
    Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
      return new Handler(s_);
    }

   private:
    Server& s_;
  };

  Poco::Net::ServerSocket socket{Poco::Net::SocketAddress("127.0.0.1", 0)};
  Poco::Net::HTTPServer http{new Factory(*this), socket, [] {
                               auto* p = new Poco::Net::HTTPServerParams;
                               p->setKeepAlive(true);
                               p->setKeepAliveTimeout(Poco::Timespan(30, 0));
                               return p;
                             }()};
  Server() { http.start(); }
  ~Server() { http.stopAll(true); }
  std::string url(const std::string& path) { return "http://127.0.0.1:" + std::to_string(socket.address().port()) + path; }
  std::size_t distinctClients() {
    std::lock_guard<std::mutex> lock(mutex);
    return std::set<int>(ports.begin(), ports.end()).size();
  }
  std::size_t requests() {
    std::lock_guard<std::mutex> lock(mutex);
    return ports.size();
  }
};

// One POST through `pool`; returns whether the lease was a re-used connection.
bool post(sc::ClientPool& pool, const std::string& url, std::size_t maxBody = 1 << 20) {
  Poco::URI uri(url);
  sc::ClientPool::Lease session = pool.acquire(uri, nullptr, 5000ms);
  const bool reused = session.reused();
  Poco::Net::HTTPRequest req(Poco::Net::HTTPRequest::HTTP_POST, uri.getPathAndQuery(), Poco::Net::HTTPMessage::HTTP_1_1);
  const std::string body = "{\"n\":1}";
  req.setContentLength(static_cast<std::streamsize>(body.size()));
  session->sendRequest(req) << body;
  Poco::Net::HTTPResponse resp;
  std::istream& in = session->receiveResponse(resp);
  std::string got;
  BOOST_TEST(static_cast<int>(resp.getStatus()) == 200);
  if (sc::readBody(in, got, maxBody) && resp.getKeepAlive()) session.keep();
  return reused;
}

}  // namespace

BOOST_AUTO_TEST_CASE(sequential_exchanges_share_one_connection) {
  Server server;
  sc::ClientPool pool;
  BOOST_TEST(!post(pool, server.url("/ok")));
  BOOST_TEST(post(pool, server.url("/ok")));
  BOOST_TEST(post(pool, server.url("/ok")));
  BOOST_TEST(server.requests() == 3u);
  BOOST_TEST(server.distinctClients() == 1u);
  BOOST_TEST(pool.idle() == 1u);
}

BOOST_AUTO_TEST_CASE(connection_close_answer_is_not_kept) {
  Server server;
  sc::ClientPool pool;
  BOOST_TEST(!post(pool, server.url("/close")));
  BOOST_TEST(pool.idle() == 0u);
  BOOST_TEST(!post(pool, server.url("/ok")));
  BOOST_TEST(server.distinctClients() == 2u);
}

BOOST_AUTO_TEST_CASE(body_cut_at_the_limit_leaves_the_connection_unread_so_it_is_not_kept) {
  Server server;
  sc::ClientPool pool;
  BOOST_TEST(!post(pool, server.url("/big"), 1000));
  BOOST_TEST(pool.idle() == 0u);
  BOOST_TEST(!post(pool, server.url("/big")));  // read to the end this time: kept
  BOOST_TEST(pool.idle() == 1u);
  BOOST_TEST(post(pool, server.url("/ok")));
  BOOST_TEST(server.distinctClients() == 2u);
}

BOOST_AUTO_TEST_CASE(connections_idle_past_the_limit_are_dropped) {
  Server server;
  sc::ClientPool pool(0ms, 8);  // every idle connection is too old by the time it is asked for
  BOOST_TEST(!post(pool, server.url("/ok")));
  BOOST_TEST(!post(pool, server.url("/ok")));
  BOOST_TEST(server.distinctClients() == 2u);
}

BOOST_AUTO_TEST_CASE(concurrent_leases_get_separate_connections_and_all_come_back) {
  Server server;
  sc::ClientPool pool;
  Poco::URI uri(server.url("/ok"));
  {
    sc::ClientPool::Lease a = pool.acquire(uri, nullptr, 5000ms);
    sc::ClientPool::Lease b = pool.acquire(uri, nullptr, 5000ms);
    BOOST_TEST(&*a != &*b);
    BOOST_TEST(!a.reused());
    BOOST_TEST(!b.reused());
  }  // neither exchanged anything nor was kept
  BOOST_TEST(pool.idle() == 0u);
  BOOST_TEST(!post(pool, server.url("/ok")));
  BOOST_TEST(post(pool, server.url("/ok")));
}

BOOST_AUTO_TEST_CASE(a_connection_the_server_closed_fails_the_exchange_instead_of_hanging) {
  sc::ClientPool pool;
  std::string url;
  {
    Server server;
    url = server.url("/ok");
    BOOST_TEST(!post(pool, url));
    BOOST_TEST(pool.idle() == 1u);
  }  // the server is gone and closed its side
  BOOST_CHECK_THROW(post(pool, url), Poco::Exception);
}
