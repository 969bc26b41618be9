#include "channels/http/client_pool.h"

#include <istream>

#include <Poco/Net/HTTPSClientSession.h>

namespace switchboard::channels {

ClientPool::ClientPool(std::chrono::milliseconds maxIdle, std::size_t maxIdlePerEndpoint)
    : maxIdle_(maxIdle), maxIdlePerEndpoint_(maxIdlePerEndpoint) {}

ClientPool::Lease::~Lease() {
  if (pool_ != nullptr && session_ && keep_) pool_->giveBack(std::move(key_), std::move(session_));
}

ClientPool::Lease ClientPool::acquire(const Poco::URI& uri, const Poco::Net::Context::Ptr& tls,
                                      std::chrono::milliseconds timeout) {
  const bool https = uri.getScheme() == "https";
  std::string key = uri.getScheme() + "://" + uri.getHost() + ":" + std::to_string(uri.getPort());
  const Poco::Timespan span(static_cast<Poco::Timespan::TimeDiff>(timeout.count()) * 1000);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = idle_.find(key);
    const auto now = std::chrono::steady_clock::now();
    while (it != idle_.end() && !it->second.empty()) {
      Idle entry = std::move(it->second.back());
      it->second.pop_back();
      if (now - entry.since > maxIdle_) continue;  // the server may have closed it: drop it
      entry.session->setTimeout(span);
      return Lease(*this, std::move(key), std::move(entry.session), true);
    }
  }
  std::unique_ptr<Poco::Net::HTTPClientSession> session;
  if (https) {
    session = std::make_unique<Poco::Net::HTTPSClientSession>(uri.getHost(), uri.getPort(), tls);
  } else {
    session = std::make_unique<Poco::Net::HTTPClientSession>(uri.getHost(), uri.getPort());
  }
  session->setTimeout(span);
  session->setKeepAlive(true);
  session->setKeepAliveTimeout(Poco::Timespan(static_cast<Poco::Timespan::TimeDiff>(maxIdle_.count()) * 1000));
  return Lease(*this, std::move(key), std::move(session), false);
}

void ClientPool::giveBack(std::string key, std::unique_ptr<Poco::Net::HTTPClientSession> session) {
  if (!session->connected()) return;
  std::lock_guard<std::mutex> lock(mutex_);
  auto& list = idle_[key];
  if (list.size() >= maxIdlePerEndpoint_) return;
  list.push_back({std::move(session), std::chrono::steady_clock::now()});
}

std::size_t ClientPool::idle() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::size_t n = 0;
  for (const auto& [key, list] : idle_) n += list.size();
  return n;
}

bool readBody(std::istream& in, std::string& body, std::size_t max) {
  char buffer[16384];
  while (in) {
    in.read(buffer, sizeof buffer);
    const auto n = static_cast<std::size_t>(in.gcount());
    if (body.size() + n > max) {
      body.append(buffer, max - body.size());
      return false;
    }
    body.append(buffer, n);
  }
  return in.eof();
}

}  // namespace switchboard::channels
