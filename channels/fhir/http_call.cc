#include "channels/fhir/http_call.h"

#include <Poco/Exception.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/SSLException.h>
#include <Poco/URI.h>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <memory>

namespace switchboard::channels::fhir {

Poco::Net::Context::Ptr TlsContexts::forHost(const std::string& host) {
  std::lock_guard lock(mutex_);
  auto it = byHost_.find(host);
  if (it != byHost_.end()) return it->second;
  Poco::Net::Context::Ptr context = new Poco::Net::Context(
      Poco::Net::Context::TLS_CLIENT_USE, "", "", caFile_, Poco::Net::Context::VERIFY_RELAXED, 9,
      /*loadDefaultCAs=*/caFile_.empty());
  context->requireMinimumProtocol(Poco::Net::Context::PROTO_TLSV1_2);
  X509_VERIFY_PARAM* param = SSL_CTX_get0_param(context->sslContext());
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  if (X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) != 1) {
    X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
  }
  byHost_.emplace(host, context);
  return context;
}

Result<HttpExchange> call(const std::string& method, const std::string& url,
                          const std::vector<core::HttpHeader>& headers, std::string_view body,
                          std::chrono::milliseconds timeout, TlsContexts& tls,
                          std::size_t maxBody, ClientPool* pool) {
  try {
    Poco::URI uri(url);
    ClientPool fresh(std::chrono::milliseconds(0), 0);  // keeps nothing
    const Poco::Net::Context::Ptr context = uri.getScheme() == "https" ? tls.forHost(uri.getHost()) : nullptr;
    ClientPool::Lease session = (pool != nullptr ? *pool : fresh).acquire(uri, context, timeout);
    std::string target = uri.getPathAndQuery();
    if (target.empty()) target = "/";
    Poco::Net::HTTPRequest req(method, target, Poco::Net::HTTPMessage::HTTP_1_1);
    for (const auto& h : headers) req.set(h.name, h.value);
    if (method == "POST" || method == "PUT" || !body.empty()) {
      req.setContentLength(static_cast<std::streamsize>(body.size()));
    }
    std::ostream& out = session->sendRequest(req);
    out.write(body.data(), static_cast<std::streamsize>(body.size()));
    Poco::Net::HTTPResponse resp;
    std::istream& in = session->receiveResponse(resp);
    HttpExchange ex;
    ex.status = static_cast<int>(resp.getStatus());
    ex.reason = resp.getReason();
    for (const auto& [k, v] : resp) ex.headers.push_back({k, v});
    if (readBody(in, ex.body, maxBody) && resp.getKeepAlive()) session.keep();
    return ex;
  } catch (const Poco::TimeoutException& e) {
    return fail(ErrorCode::kTimeout, "timeout after " + std::to_string(timeout.count()) + " ms: " + e.displayText());
  } catch (const Poco::Net::SSLException& e) {
    return fail(ErrorCode::kSecurity, "TLS: " + e.displayText());
  } catch (const Poco::Exception& e) {
    return fail(ErrorCode::kTransient, "connection: " + e.displayText());
  } catch (const std::exception& e) {
    return fail(ErrorCode::kTransient, std::string("connection: ") + e.what());
  }
}

std::string formEncode(std::string_view value) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : value) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else if (c == ' ') {
      out += '+';
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

}  // namespace switchboard::channels::fhir
