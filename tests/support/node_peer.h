// Starts a Node.js peer script from tests/e2e/peers (a real FHIR server, vendor API fakes) as a
// child process on 127.0.0.1, waits until it reports its port, and stops it on destruction.
// The npm packages come from tests/e2e/node_modules (installed by scripts/test).
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace switchboard::testing {

class NodePeer {
 public:
  // `script` is relative to tests/e2e/peers, e.g. "fhir-server.mjs".
  explicit NodePeer(std::string script, std::map<std::string, std::string> env = {},
                    std::vector<std::string> args = {});
  ~NodePeer();
  NodePeer(const NodePeer&) = delete;
  NodePeer& operator=(const NodePeer&) = delete;

  // Empty when the peer is up; otherwise why it failed (with its output).
  const std::string& error() const { return error_; }
  int port() const { return port_; }
  std::string baseUrl() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string output() const;  // what the peer printed so far
  void stop();

  static std::filesystem::path sourceDir();  // SWITCHBOARD_SOURCE_DIR

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::filesystem::path dir_;
  std::string error_;
};

// One HTTP request to 127.0.0.1:port; returns {status, body} (status 0 when unreachable).
struct PeerResponse {
  int status = 0;
  std::string body;
};
PeerResponse peerRequest(int port, const std::string& method, const std::string& path,
                         const std::string& body = {}, const std::string& contentType = "application/json");

}  // namespace switchboard::testing
