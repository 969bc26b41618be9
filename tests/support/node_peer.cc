#include "tests/support/node_peer.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <Poco/Exception.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

namespace switchboard::testing {

std::filesystem::path NodePeer::sourceDir() {
  const char* dir = std::getenv("SWITCHBOARD_SOURCE_DIR");
  return dir != nullptr ? std::filesystem::path(dir) : std::filesystem::current_path();
}

NodePeer::NodePeer(std::string script, std::map<std::string, std::string> env, std::vector<std::string> args) {
  char tmpl[] = "/tmp/switchboard-peer.XXXXXX";
  dir_ = mkdtemp(tmpl);
  const auto scriptPath = sourceDir() / "tests" / "e2e" / "peers" / script;
  if (!std::filesystem::exists(sourceDir() / "tests" / "e2e" / "node_modules")) {
    error_ = "tests/e2e/node_modules is missing: run scripts/test (it runs npm ci there)";
    return;
  }
  const auto portFile = dir_ / "port";
  const auto logFile = dir_ / "output.log";
  pid_ = fork();
  if (pid_ == 0) {
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    FILE* log = std::fopen(logFile.c_str(), "w");
    if (log != nullptr) {
      dup2(fileno(log), 1);
      dup2(fileno(log), 2);
    }
    std::vector<std::string> argv = {"node", scriptPath.string(), "--port-file", portFile.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> cargs;
    for (auto& a : argv) cargs.push_back(a.data());
    cargs.push_back(nullptr);
    execvp("node", cargs.data());
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(portFile);
    if (in >> port_ && port_ > 0) return;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      error_ = "peer " + script + " exited: " + output();
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  error_ = "peer " + script + " did not start within 60 s: " + output();
  stop();
}

std::string NodePeer::output() const {
  std::ifstream in(dir_ / "output.log");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void NodePeer::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  for (int i = 0; i < 100; ++i) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

NodePeer::~NodePeer() {
  stop();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

PeerResponse peerRequest(int port, const std::string& method, const std::string& path, const std::string& body,
                         const std::string& contentType) {
  PeerResponse out;
  try {
    Poco::Net::HTTPClientSession session("127.0.0.1", static_cast<Poco::UInt16>(port));
    session.setTimeout(Poco::Timespan(30, 0));
    Poco::Net::HTTPRequest req(method, path, Poco::Net::HTTPMessage::HTTP_1_1);
    if (!body.empty() || method == "POST") {
      req.setContentType(contentType);
      req.setContentLength(static_cast<std::streamsize>(body.size()));
    }
    std::ostream& os = session.sendRequest(req);
    os << body;
    Poco::Net::HTTPResponse resp;
    std::istream& is = session.receiveResponse(resp);
    Poco::StreamCopier::copyToString(is, out.body);
    out.status = static_cast<int>(resp.getStatus());
  } catch (const Poco::Exception&) {
    out.status = 0;
  }
  return out;
}

}  // namespace switchboard::testing
