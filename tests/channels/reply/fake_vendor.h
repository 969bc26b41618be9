// A local fake of the Meta Cloud API, 8x8 Chat Apps and Twilio send endpoints for the reply
// tests: a Poco HTTPServer on 127.0.0.1 (ephemeral port) that records every request, checks
// method, path, Authorization, Content-Type and the body's shape against the documented API
// (answering the provider's documented 400 error shape when something is off), and otherwise
// answers the documented success shape, or a scripted response pushed by the test.
// Thread-safety: the server thread records under a mutex; the test reads through accessors.
#pragma once

#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace switchboard::testing {

struct RecordedRequest {
  std::string method;
  std::string uri;
  std::string contentType;
  std::string authorization;
  std::string body;
  std::string shapeError;  // what the fake found wrong with the request ("" when it conformed)
};

struct ScriptedResponse {
  int status = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

class FakeVendor {
 public:
  enum class Api { kMeta, kEightByEight, kTwilio };
  struct Expect {
    std::string path;           // exact request path
    std::string authorization;  // exact Authorization header
  };

  FakeVendor(Api api, Expect expect);
  ~FakeVendor();

  std::string baseUrl() const;  // http://127.0.0.1:<port>
  void push(ScriptedResponse response);
  std::vector<RecordedRequest> requests() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace switchboard::testing
