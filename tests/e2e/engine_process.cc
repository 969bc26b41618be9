#include "tests/e2e/engine_process.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/StreamCopier.h>
#include <rapidjson/document.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

namespace switchboard::e2e {

namespace fs = std::filesystem;

namespace {

Response exchange(Poco::Net::HTTPClientSession& session, const std::string& method, const std::string& path,
                  const std::string& body, const std::vector<std::pair<std::string, std::string>>& headers) {
  Response out;
  try {
    Poco::Net::HTTPRequest req(method, path, Poco::Net::HTTPMessage::HTTP_1_1);
    bool hasType = false;
    for (const auto& [k, v] : headers) {
      req.set(k, v);
      hasType = hasType || k == "Content-Type";
    }
    if (!hasType && !body.empty()) req.setContentType("application/json");
    if (method != "GET" || !body.empty()) req.setContentLength(static_cast<std::streamsize>(body.size()));
    std::ostream& os = session.sendRequest(req);
    os << body;
    Poco::Net::HTTPResponse resp;
    std::istream& is = session.receiveResponse(resp);
    Poco::StreamCopier::copyToString(is, out.body);
    out.status = static_cast<int>(resp.getStatus());
    for (const auto& [k, v] : resp) out.headers[k] = v;
  } catch (const std::exception&) {
    out.status = 0;
    session.reset();
  }
  return out;
}

std::string readAll(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

Response http(int port, const std::string& method, const std::string& path, const std::string& body,
              const std::vector<std::pair<std::string, std::string>>& headers) {
  Poco::Net::HTTPClientSession session("127.0.0.1", static_cast<Poco::UInt16>(port));
  session.setTimeout(Poco::Timespan(30, 0));
  return exchange(session, method, path, body, headers);
}

struct HttpClient::Impl {
  Poco::Net::HTTPClientSession session;
};

HttpClient::HttpClient(int port) : impl_(new Impl{Poco::Net::HTTPClientSession("127.0.0.1", static_cast<Poco::UInt16>(port))}) {
  impl_->session.setKeepAlive(true);
  impl_->session.setTimeout(Poco::Timespan(30, 0));
}
HttpClient::~HttpClient() = default;

Response HttpClient::post(const std::string& path, const std::string& body,
                          const std::vector<std::pair<std::string, std::string>>& headers) {
  return exchange(impl_->session, "POST", path, body, headers);
}

std::string EngineProcess::binary() {
  const char* bin = std::getenv("SWITCHBOARD_BINARY_DIR");
  return std::string(bin != nullptr ? bin : "build") + "/bin/switchboard";
}

EngineProcess::EngineProcess(const std::string& name, const std::string& engineJson) {
  static std::atomic<int> counter{0};
  dir_ = fs::temp_directory_path() / ("sb-e2e-" + name + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  fs::remove_all(dir_);
  fs::create_directories(dir_ / "conf" / "channels");
  fs::create_directories(dir_ / "var");
  std::ofstream(dir_ / "conf" / "switchboard.json") << engineJson;
  env_["SWITCHBOARD_DATA_DIR"] = (dir_ / "var").string();
  env_["SWITCHBOARD_PORT"] = "0";
  env_["SWITCHBOARD_ADMIN_TOKEN"] = "e2e-admin-token";
}

EngineProcess::~EngineProcess() {
  if (pid_ > 0) kill9();
  if (std::getenv("SWITCHBOARD_KEEP_E2E") == nullptr) fs::remove_all(dir_);
}

void EngineProcess::addChannel(const std::string& file, const std::string& json) {
  std::ofstream(dir_ / "conf" / "channels" / file) << json;
}

pid_t EngineProcess::spawn() {
  ++runs_;
  fs::remove(dataDir() / "switchboard.port");
  std::string out = (dir_ / ("stdout." + std::to_string(runs_))).string();
  std::string err = (dir_ / ("stderr." + std::to_string(runs_))).string();
  std::string bin = binary();
  std::string conf = (dir_ / "conf" / "switchboard.json").string();
  pid_t pid = ::fork();
  if (pid == 0) {
    for (const auto& [k, v] : env_) ::setenv(k.c_str(), v.c_str(), 1);
    int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(o, 1);
    ::dup2(e, 2);
    ::execl(bin.c_str(), bin.c_str(), "serve", "--config", conf.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

bool EngineProcess::start() {
  pid_ = spawn();
  fs::path portFile = dataDir() / "switchboard.port";
  for (int i = 0; i < 600; ++i) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    if (fs::exists(portFile)) {
      std::string text = readAll(portFile);
      if (!text.empty() && text.back() == '\n') {
        port_ = std::stoi(text);
        if (http(port_, "GET", "/healthz").status == 200) return true;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

int EngineProcess::waitExit() {
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

int EngineProcess::runToExit() {
  pid_ = spawn();
  return waitExit();
}

void EngineProcess::kill9() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  waitExit();
}

int EngineProcess::terminate() {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  return waitExit();
}

std::string EngineProcess::stderrText() const { return readAll(dir_ / ("stderr." + std::to_string(runs_))); }
std::string EngineProcess::stdoutText() const { return readAll(dir_ / ("stdout." + std::to_string(runs_))); }

struct Peer::Impl {
  mutable std::mutex mutex;
  Policy policy;
  std::vector<Hit> hits;
  std::unique_ptr<Poco::Net::HTTPServer> server;
  int port = 0;
};

namespace {
class PeerHandler final : public Poco::Net::HTTPRequestHandler {
 public:
  explicit PeerHandler(Peer::Impl* impl) : impl_(impl) {}
  void handleRequest(Poco::Net::HTTPServerRequest& req, Poco::Net::HTTPServerResponse& resp) override;

 private:
  Peer::Impl* impl_;
};
class PeerFactory final : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  explicit PeerFactory(Peer::Impl* impl) : impl_(impl) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
    return new PeerHandler(impl_);
  }

 private:
  Peer::Impl* impl_;
};
}  // namespace

void PeerHandler::handleRequest(Poco::Net::HTTPServerRequest& req, Poco::Net::HTTPServerResponse& resp) {
  Peer::Hit hit;
  Poco::StreamCopier::copyToString(req.stream(), hit.body);
  for (const auto& [k, v] : req) hit.headers[k] = v;
  std::lock_guard<std::mutex> lock(impl_->mutex);
  hit.status = impl_->policy(hit);
  impl_->hits.push_back(hit);
  resp.setStatus(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(hit.status));
  resp.setContentType("application/json");
  std::string body = hit.status < 300 ? "{\"ok\":true}" : "{\"error\":\"scripted failure\"}";
  resp.setContentLength(static_cast<std::streamsize>(body.size()));
  resp.send() << body;
}

Peer::Peer(Policy policy) : impl_(new Impl) {
  impl_->policy = std::move(policy);
  Poco::Net::ServerSocket socket(Poco::Net::SocketAddress("127.0.0.1", 0));
  impl_->port = socket.address().port();
  auto* params = new Poco::Net::HTTPServerParams;
  params->setMaxThreads(8);
  impl_->server = std::make_unique<Poco::Net::HTTPServer>(new PeerFactory(impl_.get()), socket, params);
  impl_->server->start();
}

Peer::~Peer() { impl_->server->stopAll(true); }

int Peer::port() const { return impl_->port; }

std::vector<Peer::Hit> Peer::hits() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->hits;
}

void Peer::setPolicy(Policy policy) {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->policy = std::move(policy);
}

bool waitFor(const std::function<bool()>& condition, double seconds) {
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return condition();
}

std::string jsonString(const std::string& json, const std::string& key) {
  rapidjson::Document doc;
  doc.Parse(json.c_str(), json.size());
  if (doc.HasParseError() || !doc.IsObject()) return {};
  auto it = doc.FindMember(key.c_str());
  if (it == doc.MemberEnd() || !it->value.IsString()) return {};
  return it->value.GetString();
}

}  // namespace switchboard::e2e
