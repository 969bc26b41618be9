#include "engine/runtime/http_server.h"

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/ThreadPool.h>
#include <Poco/URI.h>

#include "engine/core/connector.h"

namespace switchboard::runtime {

namespace {

void writeResponse(Poco::Net::HTTPServerResponse& out, const core::HttpResponse& r) {
  out.setStatus(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(r.status));
  out.setContentType(r.contentType);
  for (const auto& h : r.headers) out.set(h.name, h.value);
  out.setContentLength(static_cast<std::streamsize>(r.body.size()));
  std::ostream& os = out.send();
  os.write(r.body.data(), static_cast<std::streamsize>(r.body.size()));
}

core::HttpResponse problem(int status, ErrorCode code, std::string message) {
  core::HttpResponse r = core::HttpResponse::json(status, core::operationOutcomeJson(Error(code, std::move(message))));
  r.contentType = "application/fhir+json";
  return r;
}

class Handler final : public Poco::Net::HTTPRequestHandler {
 public:
  explicit Handler(HttpRouter& router) : router_(router) {}

  void handleRequest(Poco::Net::HTTPServerRequest& in, Poco::Net::HTTPServerResponse& out) override {
    try {
      core::HttpRequest req;
      req.method = in.getMethod();
      const std::string& uri = in.getURI();
      std::size_t q = uri.find('?');
      std::string rawPath = uri.substr(0, q);
      if (q != std::string::npos) req.query = uri.substr(q + 1);
      Poco::URI::decode(rawPath, req.path);
      req.host = in.getHost();
      req.scheme = "http";
      for (const auto& [name, value] : in) req.headers.push_back({name, value});
      if (const std::string* proto = req.header("X-Forwarded-Proto")) req.scheme = *proto;

      std::optional<std::size_t> limit = router_.bodyLimit(req.path);
      if (!limit) {
        drain(in.stream(), 64 * 1024);
        writeResponse(out, problem(404, ErrorCode::kNotFound, "no channel or endpoint serves " + req.path));
        return;
      }
      if (in.hasContentLength() && in.getContentLength64() > static_cast<Poco::Int64>(*limit)) {
        router_.rejectedBeforeBody(req.path, 413);
        out.setKeepAlive(false);
        writeResponse(out, problem(413, ErrorCode::kTooLong,
                                   "body of " + std::to_string(in.getContentLength64()) +
                                       " bytes exceeds the limit of " + std::to_string(*limit) + " bytes"));
        return;
      }
      std::istream& body = in.stream();
      if (in.hasContentLength()) req.body.reserve(static_cast<std::size_t>(in.getContentLength64()));
      char buf[16384];
      while (body) {
        body.read(buf, sizeof(buf));
        std::streamsize n = body.gcount();
        if (n <= 0) break;
        if (req.body.size() + static_cast<std::size_t>(n) > *limit) {
          router_.rejectedBeforeBody(req.path, 413);
          out.setKeepAlive(false);
          writeResponse(out, problem(413, ErrorCode::kTooLong,
                                     "body exceeds the limit of " + std::to_string(*limit) + " bytes"));
          return;
        }
        req.body.append(buf, static_cast<std::size_t>(n));
      }
      writeResponse(out, router_.handle(req));
    } catch (const std::exception& e) {
      if (!out.sent()) {
        out.setKeepAlive(false);
        writeResponse(out, problem(500, ErrorCode::kException, "internal error"));
      }
    }
  }

 private:
  static void drain(std::istream& in, std::size_t max) {
    char buf[4096];
    std::size_t total = 0;
    while (in && total < max) {
      in.read(buf, sizeof(buf));
      if (in.gcount() <= 0) break;
      total += static_cast<std::size_t>(in.gcount());
    }
  }
  HttpRouter& router_;
};

class Factory final : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  explicit Factory(HttpRouter& router) : router_(router) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
    return new Handler(router_);
  }

 private:
  HttpRouter& router_;
};

}  // namespace

struct HttpServer::Impl {
  HttpRouter& router;
  std::string bind;
  int port;
  int threads;
  int queue;
  std::unique_ptr<Poco::ThreadPool> pool;
  std::unique_ptr<Poco::Net::HTTPServer> server;
  int boundPort = 0;
};

HttpServer::HttpServer(HttpRouter& router, std::string bind, int port, int threads, int queue)
    : impl_(new Impl{router, std::move(bind), port, threads, queue, nullptr, nullptr, 0}) {}

HttpServer::~HttpServer() { stop(); }

void HttpServer::start() {
  Poco::Net::ServerSocket socket;
  socket.bind(Poco::Net::SocketAddress(impl_->bind, static_cast<Poco::UInt16>(impl_->port)), true);
  socket.listen(1024);
  impl_->boundPort = socket.address().port();
  auto* params = new Poco::Net::HTTPServerParams;
  params->setMaxThreads(impl_->threads);
  params->setMaxQueued(impl_->queue);
  params->setKeepAlive(true);
  params->setMaxKeepAliveRequests(0);
  params->setKeepAliveTimeout(Poco::Timespan(15, 0));
  params->setTimeout(Poco::Timespan(30, 0));
  impl_->pool = std::make_unique<Poco::ThreadPool>(2, impl_->threads + 2);
  impl_->server = std::make_unique<Poco::Net::HTTPServer>(new Factory(impl_->router), *impl_->pool,
                                                          socket, params);
  impl_->server->start();
}

void HttpServer::stop() {
  if (impl_->server) {
    impl_->server->stopAll(false);
    impl_->pool->joinAll();
    impl_->server.reset();
  }
}

int HttpServer::port() const { return impl_->boundPort; }

}  // namespace switchboard::runtime
