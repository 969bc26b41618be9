// HTTP request/response values passed between the engine's HTTP server and source connectors,
// independent of Poco so connectors and their tests need no server.
// Thread-safety: plain values.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace switchboard::core {

struct HttpHeader {
  std::string name;
  std::string value;
};

struct HttpRequest {
  std::string method;  // GET, POST, ...
  std::string scheme;  // "http" or "https" as the client reached us (X-Forwarded-Proto honoured)
  std::string host;    // Host header as received (may include a port)
  std::string path;    // decoded path without the query, e.g. /webhooks/whatsapp
  std::string query;   // raw query string without '?', e.g. hub.mode=subscribe&...
  std::vector<HttpHeader> headers;
  std::string body;    // raw bytes as received

  // First header named `name` (case-insensitive), or nullptr.
  const std::string* header(std::string_view name) const;
  // The full URL as the client requested it: scheme://host/path?query.
  std::string url() const;
};

struct HttpResponse {
  int status = 200;
  std::string contentType = "application/json";
  std::string body;
  std::vector<HttpHeader> headers;

  static HttpResponse json(int status, std::string body) {
    HttpResponse r;
    r.status = status;
    r.body = std::move(body);
    return r;
  }
  static HttpResponse text(int status, std::string body, std::string type = "text/plain") {
    HttpResponse r;
    r.status = status;
    r.contentType = std::move(type);
    r.body = std::move(body);
    return r;
  }
};

// Case-insensitive ASCII equality, for header names.
bool equalsIgnoreCase(std::string_view a, std::string_view b);
// `s` without leading and trailing spaces and tabs (optional whitespace around header values).
std::string_view trimHeaderSpace(std::string_view s);
// Whether the comma-separated header value `list` (e.g. Connection) holds `token`, case-insensitive.
bool headerListHas(std::string_view list, std::string_view token);

// Percent-decodes application/x-www-form-urlencoded text ('+' is a space).
std::string formDecode(std::string_view text);
// Splits a query string or form body into decoded name/value pairs, in order.
std::vector<std::pair<std::string, std::string>> parseForm(std::string_view text);

}  // namespace switchboard::core
