// Test helpers that drive the built `switchboard` binary as a separate process: temporary
// config and data directories, start/kill/terminate, HTTP calls, and a peer HTTP server whose
// answers the test scripts.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace switchboard::e2e {

struct Response {
  int status = 0;  // 0: connection failed
  std::string body;
  std::map<std::string, std::string> headers;
};

// One HTTP request on a fresh connection to 127.0.0.1:port.
Response http(int port, const std::string& method, const std::string& path, const std::string& body = {},
              const std::vector<std::pair<std::string, std::string>>& headers = {});

// Keeps one keep-alive connection for many requests (closer to what providers do).
class HttpClient {
 public:
  explicit HttpClient(int port);
  ~HttpClient();
  Response post(const std::string& path, const std::string& body,
                const std::vector<std::pair<std::string, std::string>>& headers = {});

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class EngineProcess {
 public:
  // Creates <tmp>/conf (switchboard.json from `engineJson`) and <tmp>/var.
  EngineProcess(const std::string& name, const std::string& engineJson);
  ~EngineProcess();

  void addChannel(const std::string& file, const std::string& json);
  void setEnv(const std::string& name, const std::string& value) { env_[name] = value; }

  // Starts the binary; returns once /healthz answers 200 (true) or the process died (false).
  bool start();
  // Runs the binary to completion without waiting for readiness; returns the exit code.
  int runToExit();
  void kill9();
  // SIGTERM and wait; returns the exit code (or 128+signal).
  int terminate();
  bool running() const { return pid_ > 0; }

  int port() const { return port_; }
  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path dataDir() const { return dir_ / "var"; }
  std::string stderrText() const;
  std::string stdoutText() const;
  static std::string binary();

 private:
  pid_t spawn();
  int waitExit();
  std::filesystem::path dir_;
  std::map<std::string, std::string> env_;
  pid_t pid_ = -1;
  int port_ = 0;
  int runs_ = 0;
};

// A scripted HTTP peer on 127.0.0.1 (port 0). `answer` gets the request body and headers and
// returns the status to send; every request is recorded.
class Peer {
 public:
  struct Hit {
    std::string body;
    std::map<std::string, std::string> headers;
    int status = 0;
  };
  using Policy = std::function<int(const Hit&)>;
  explicit Peer(Policy policy);
  ~Peer();
  int port() const;
  std::vector<Hit> hits() const;
  void setPolicy(Policy policy);

  struct Impl;  // public so the file-local request handlers can reach it

 private:
  std::unique_ptr<Impl> impl_;
};

// Polls `condition` every 50 ms until it holds or `seconds` pass.
bool waitFor(const std::function<bool()>& condition, double seconds);

// Reads the value of the top-level string member `key` from a small JSON text.
std::string jsonString(const std::string& json, const std::string& key);

}  // namespace switchboard::e2e
