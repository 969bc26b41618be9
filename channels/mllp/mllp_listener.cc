#include "channels/mllp/mllp_listener.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "engine/core/thread_name.h"
#include "hl7v2/mllp.h"

namespace switchboard::channels::mllp {

Result<std::unique_ptr<MllpListener>> MllpListener::start(ListenerOptions options,
                                                          std::shared_ptr<MllpHandler> handler) {
  auto socket = listenTcp(options.host, options.port);
  if (!socket) return std::unexpected(socket.error());
  std::unique_ptr<MllpListener> listener(
      new MllpListener(std::move(options), std::move(*socket), std::move(handler)));
  if (listener->wakeFd_ < 0) return fail(ErrorCode::kException, "eventfd failed");
  listener->acceptThread_ = std::thread([l = listener.get()] {
    core::nameThisThread("sb-mllp-accept");
    l->acceptLoop();
  });
  return listener;
}

MllpListener::MllpListener(ListenerOptions options, Socket listening,
                           std::shared_ptr<MllpHandler> handler)
    : options_(std::move(options)),
      listening_(std::move(listening)),
      port_(boundPort(listening_)),
      wakeFd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      handler_(std::move(handler)) {}

MllpListener::~MllpListener() {
  stop();
  if (wakeFd_ >= 0) ::close(wakeFd_);
}

void MllpListener::setHandler(std::shared_ptr<MllpHandler> handler) {
  std::lock_guard<std::mutex> lock(mutex_);
  handler_ = std::move(handler);
}

std::shared_ptr<MllpHandler> MllpListener::handler() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return handler_;
}

void MllpListener::stop() {
  std::call_once(stopOnce_, [this] {
    stopping_ = true;
    std::uint64_t one = 1;
    if (wakeFd_ >= 0) [[maybe_unused]]
      auto n = ::write(wakeFd_, &one, sizeof one);
    if (acceptThread_.joinable()) acceptThread_.join();
    listening_.close();
    std::list<std::unique_ptr<Connection>> connections;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto& c : connections_) c->socket.shutdownBoth();
      connections.swap(connections_);
    }
    for (auto& c : connections) {
      if (c->thread.joinable()) c->thread.join();
    }
  });
}

void MllpListener::reapFinished() {
  std::list<std::unique_ptr<Connection>> finished;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = connections_.begin(); it != connections_.end();) {
      if ((*it)->done.load()) {
        finished.push_back(std::move(*it));
        it = connections_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& c : finished) {
    if (c->thread.joinable()) c->thread.join();
  }
}

void MllpListener::acceptLoop() {
  while (!stopping_) {
    pollfd p[2] = {{listening_.fd(), POLLIN, 0}, {wakeFd_, POLLIN, 0}};
    int n = ::poll(p, 2, 1000);
    reapFinished();
    if (stopping_) break;
    if (n <= 0 || (p[0].revents & POLLIN) == 0) continue;
    Socket accepted(::accept4(listening_.fd(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!accepted.valid()) continue;
    if (open_.load() >= options_.maxConnections) {
      std::fprintf(
          stderr,
          "switchboard: mllp listener on port %d: connection from %s closed: %d connections open\n",
          port_, peerName(accepted).c_str(), open_.load());
      continue;  // closed by the destructor
    }
    auto connection = std::make_unique<Connection>();
    connection->socket = std::move(accepted);
    Connection* c = connection.get();
    ++open_;
    std::lock_guard<std::mutex> lock(mutex_);
    connections_.push_back(std::move(connection));
    c->thread = std::thread([this, c] {
      core::nameThisThread("sb-mllp-conn");
      serve(*c);
      --open_;
      c->done = true;
    });
  }
}

void MllpListener::serve(Connection& connection) {
  const std::string peer = peerName(connection.socket);
  hl7v2::MllpDeframer deframer(options_.maxMessageBytes, options_.allowLineBreaksBetweenFrames);
  const int readTimeout = options_.idleTimeoutMs > 0 ? options_.idleTimeoutMs : -1;
  while (!stopping_) {
    auto bytes = readSome(connection.socket, 64 * 1024, readTimeout);
    if (!bytes || bytes->empty()) break;  // idle timeout, error or closed by the peer
    deframer.feed(*bytes);
    while (auto item = deframer.next()) {
      std::string answer;
      auto h = handler();
      if (!h) break;
      if (item->has_value()) {
        answer = h->onMessage(**item, peer);
      } else {
        answer = h->onFrameError(item->error(), peer);
      }
      if (answer.empty()) continue;
      if (auto w = writeAll(connection.socket, hl7v2::frame(answer), 30000); !w) return;
    }
  }
}

}  // namespace switchboard::channels::mllp
