// The ceiling for bench/ingest: a Poco HTTP server configured like the engine's listener that
// reads each body and answers 200 without any other work.
// Usage: bench_bare_server PORT [THREADS]
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/ThreadPool.h>

#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

class Handler final : public Poco::Net::HTTPRequestHandler {
 public:
  void handleRequest(Poco::Net::HTTPServerRequest& in, Poco::Net::HTTPServerResponse& out) override {
    std::string body;
    char buf[16384];
    std::istream& s = in.stream();
    while (s) {
      s.read(buf, sizeof(buf));
      if (s.gcount() <= 0) break;
      body.append(buf, static_cast<std::size_t>(s.gcount()));
    }
    static const std::string kReply = R"({"status":"accepted"})";
    out.setContentType("application/json");
    out.setContentLength(static_cast<std::streamsize>(kReply.size()));
    out.send() << kReply;
  }
};

class Factory final : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
    return new Handler;
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_bare_server PORT [THREADS]\n");
    return 2;
  }
  int port = std::atoi(argv[1]);
  int threads = argc > 2 ? std::atoi(argv[2]) : 64;
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  Poco::Net::ServerSocket socket;
  socket.bind(Poco::Net::SocketAddress("127.0.0.1", static_cast<Poco::UInt16>(port)), true);
  socket.listen(1024);
  auto* params = new Poco::Net::HTTPServerParams;
  params->setMaxThreads(threads);
  params->setMaxQueued(512);
  params->setKeepAlive(true);
  params->setMaxKeepAliveRequests(0);
  Poco::ThreadPool pool(2, threads + 2);
  Poco::Net::HTTPServer server(new Factory, pool, socket, params);
  server.start();
  std::printf("bare server on 127.0.0.1:%d\n", port);
  std::fflush(stdout);
  int sig = 0;
  sigwait(&signals, &sig);
  server.stopAll(true);
  return 0;
}
