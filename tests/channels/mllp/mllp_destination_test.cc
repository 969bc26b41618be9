// The `mllp` destination against a small in-test MLLP peer (an MllpListener whose answers the
// test scripts): AA/CA -> Ok with MSA-2 and the ACK kept, AE -> Retry, AR -> Fail with the ERR
// text, garbled ACK / wrong control id / timeout / refused connection -> Retry, the payload
// arrives byte for byte and one connection is kept between sends.
#define BOOST_TEST_MODULE channel_mllp_destination_tests
#include <boost/test/unit_test.hpp>

#include <condition_variable>
#include <functional>
#include <mutex>
#include <set>
#include <thread>

#include <sys/socket.h>

#include "channels/mllp/mllp_destination.h"
#include "channels/mllp/mllp_listener.h"
#include "hl7v2/ack.h"
#include "hl7v2/message.h"
#include "tests/channels/mllp/mllp_client.h"

using namespace switchboard;
using channels::mllp::MllpDestination;
using channels::mllp::MllpDestinationConfig;
using testing::adtA04;

namespace {

struct Peer final : channels::mllp::MllpHandler {
  using Answer = std::function<std::string(const std::string& message)>;
  std::mutex mutex;
  Answer answer;
  std::vector<std::string> received;
  std::set<std::string> peers;  // client host:port, one per connection used

  std::string onMessage(std::string_view message, const std::string& peer) override {
    Answer a;
    {
      std::lock_guard<std::mutex> lock(mutex);
      received.emplace_back(message);
      peers.insert(peer);
      a = answer;
    }
    return a(std::string(message));
  }
  std::string onFrameError(const Error&, const std::string&) override { return {}; }
};

// Runs on the peer's connection threads, so no Boost.Test macro here (they are not thread-safe):
// a failure returns "" (no answer), which the destination reports as no ACK and the test fails.
std::string ack(const std::string& incoming, hl7v2::AckCode code,
                std::vector<hl7v2::AckError> errors = {}) {
  auto m = hl7v2::Message::parse(incoming);
  if (!m) return {};
  hl7v2::AckOptions o;
  o.code = code;
  o.controlId = "ACK1";
  o.timestamp = "20250301101501";
  o.errors = std::move(errors);
  auto a = hl7v2::buildAck(*m, o);
  return a ? a->toEr7() : std::string();
}

struct Fixture {
  std::shared_ptr<Peer> peer = std::make_shared<Peer>();
  std::unique_ptr<channels::mllp::MllpListener> listener;
  core::Metadata metadata;

  Fixture() {
    auto l = channels::mllp::MllpListener::start({}, peer);
    BOOST_REQUIRE(l.has_value());
    listener = std::move(*l);
    peer->answer = [](const std::string& m) { return ack(m, hl7v2::AckCode::kAA); };
  }

  MllpDestination destination(int ackTimeoutMs = 10000) {
    MllpDestinationConfig c;
    c.host = "127.0.0.1";
    c.port = listener->port();
    c.ackTimeoutMs = ackTimeoutMs;
    return MllpDestination(c);
  }

  core::DeliveryResult send(MllpDestination& d, const std::string& payload) {
    core::DeliveryRequest r;
    r.deliveryId = 1;
    r.messageId = 1;
    r.payload = payload;
    r.contentType = "application/hl7-v2";
    r.metadata = &metadata;
    return d.send(r);
  }
};

}  // namespace

BOOST_FIXTURE_TEST_CASE(aa_is_ok_with_msa2_and_the_ack_kept_on_one_kept_connection, Fixture) {
  auto d = destination();
  const std::string m1 = adtA04("OUT1"), m2 = adtA04("OUT2");
  auto r = send(d, m1);
  BOOST_TEST(static_cast<int>(r.status) == static_cast<int>(core::DeliveryStatus::kOk));
  BOOST_TEST(r.response.find("MSA-1 AA MSA-2 OUT1") == 0u);
  BOOST_TEST(
      r.response.find("ACK: MSH|^~\\&|EHR|HOSP|WAGW|CLINIC|20250301101501||ACK^A04^ACK|ACK1") !=
      std::string::npos);
  BOOST_TEST(r.externalId == "OUT1");
  r = send(d, m2);
  BOOST_TEST(static_cast<int>(r.status) == static_cast<int>(core::DeliveryStatus::kOk));
  std::lock_guard<std::mutex> lock(peer->mutex);
  BOOST_REQUIRE_EQUAL(peer->received.size(), 2u);
  BOOST_TEST(peer->received[0] == m1);  // byte for byte
  BOOST_TEST(peer->received[1] == m2);
  BOOST_TEST(peer->peers.size() == 1u);  // the second send reused the connection
}

BOOST_FIXTURE_TEST_CASE(ca_is_ok_too, Fixture) {
  peer->answer = [](const std::string& m) { return ack(m, hl7v2::AckCode::kCA); };
  auto d = destination();
  auto r = send(d, adtA04("OUT3"));
  BOOST_TEST(static_cast<int>(r.status) == static_cast<int>(core::DeliveryStatus::kOk));
  BOOST_TEST(r.response.find("MSA-1 CA") == 0u);
}

BOOST_FIXTURE_TEST_CASE(ae_is_retry_with_the_err_text, Fixture) {
  peer->answer = [](const std::string& m) {
    hl7v2::AckError e;
    e.location.segment = "PID";
    e.location.sequence = 1;
    e.location.field = 3;
    e.userMessage = "database busy";
    return ack(m, hl7v2::AckCode::kAE, {e});
  };
  auto d = destination();
  auto r = send(d, adtA04("OUT4"));
  BOOST_TEST(static_cast<int>(r.status) == static_cast<int>(core::DeliveryStatus::kRetry));
  BOOST_TEST(r.response.find("MSA-1 AE MSA-2 OUT4") == 0u);
  BOOST_TEST(r.response.find("207 Application internal error at PID^1^3: database busy") !=
             std::string::npos);
}

BOOST_FIXTURE_TEST_CASE(ar_is_a_permanent_failure_with_the_err_text, Fixture) {
  peer->answer = [](const std::string& m) {
    hl7v2::AckError e;
    e.code = 204;
    e.userMessage = "unknown patient";
    return ack(m, hl7v2::AckCode::kAR, {e});
  };
  auto d = destination();
  auto r = send(d, adtA04("OUT5"));
  BOOST_TEST(static_cast<int>(r.status) == static_cast<int>(core::DeliveryStatus::kFail));
  BOOST_TEST(r.response.find("MSA-1 AR MSA-2 OUT5; ERR 204") == 0u);
  BOOST_TEST(r.response.find("unknown patient") != std::string::npos);
}

BOOST_FIXTURE_TEST_CASE(garbled_ack_is_retry_and_the_next_send_uses_a_new_connection, Fixture) {
  peer->answer = [](const std::string&) { return std::string("this is no ACK"); };
  auto d = destination();
  auto r = send(d, adtA04("OUT6"));
  BOOST_TEST(static_cast<int>(r.status) == static_cast<int>(core::DeliveryStatus::kRetry));
  BOOST_TEST(r.response.find("garbled ACK") != std::string::npos);
  peer->answer = [](const std::string& m) { return ack(m, hl7v2::AckCode::kAA); };
  r = send(d, adtA04("OUT6"));
  BOOST_TEST(static_cast<int>(r.status) == static_cast<int>(core::DeliveryStatus::kOk));
  std::lock_guard<std::mutex> lock(peer->mutex);
  BOOST_TEST(peer->peers.size() == 2u);
}

BOOST_FIXTURE_TEST_CASE(ack_for_another_control_id_is_an_error, Fixture) {
  peer->answer = [](const std::string&) {
    return ack(adtA04("SOMETHING-ELSE"), hl7v2::AckCode::kAA);
  };
  auto d = destination();
  auto r = send(d, adtA04("OUT7"));
  BOOST_TEST(static_cast<int>(r.status) == static_cast<int>(core::DeliveryStatus::kRetry));
  BOOST_TEST(r.response.find("names control id SOMETHING-ELSE instead of OUT7") !=
             std::string::npos);
}

BOOST_FIXTURE_TEST_CASE(no_ack_within_the_timeout_is_retry, Fixture) {
  auto gate = std::make_shared<std::pair<std::mutex, std::condition_variable>>();
  auto released = std::make_shared<bool>(false);
  peer->answer = [gate, released](const std::string& m) {
    std::unique_lock<std::mutex> lock(gate->first);
    gate->second.wait(lock, [&] { return *released; });
    return ack(m, hl7v2::AckCode::kAA);
  };
  auto d = destination(200);
  auto r = send(d, adtA04("OUT8"));
  BOOST_TEST(static_cast<int>(r.status) == static_cast<int>(core::DeliveryStatus::kRetry));
  BOOST_TEST(r.response.find("no ACK from mllp://127.0.0.1:") == 0u);
  {
    std::lock_guard<std::mutex> lock(gate->first);
    *released = true;
  }
  gate->second.notify_all();
}

BOOST_AUTO_TEST_CASE(refused_connection_is_retry) {
  int port = 0;
  {
    auto probe = channels::mllp::listenTcp("127.0.0.1", 0);
    BOOST_REQUIRE(probe.has_value());
    port = channels::mllp::boundPort(*probe);
  }
  MllpDestinationConfig c;
  c.host = "127.0.0.1";
  c.port = port;
  MllpDestination d(c);
  core::Metadata metadata;
  core::DeliveryRequest r;
  const std::string payload = adtA04("OUT9");
  r.payload = payload;
  r.metadata = &metadata;
  auto result = d.send(r);
  BOOST_TEST(static_cast<int>(result.status) == static_cast<int>(core::DeliveryStatus::kRetry));
  BOOST_TEST(result.response.find("connect to 127.0.0.1:" + std::to_string(port)) == 0u);
  BOOST_TEST(d.endpointKey() == "mllp://127.0.0.1:" + std::to_string(port));
}

BOOST_FIXTURE_TEST_CASE(a_payload_that_is_not_hl7_fails_without_sending, Fixture) {
  auto d = destination();
  auto r = send(d, R"({"resourceType":"Bundle"})");
  BOOST_TEST(static_cast<int>(r.status) == static_cast<int>(core::DeliveryStatus::kFail));
  BOOST_TEST(r.response.find("payload is not an HL7 v2 message") == 0u);
  std::lock_guard<std::mutex> lock(peer->mutex);
  BOOST_TEST(peer->received.empty());
}

BOOST_FIXTURE_TEST_CASE(a_peer_that_closed_the_kept_connection_is_reconnected_once, Fixture) {
  auto d = destination();
  BOOST_TEST(static_cast<int>(send(d, adtA04("K1")).status) ==
             static_cast<int>(core::DeliveryStatus::kOk));
  // The peer restarts: the kept connection is dead, a new listener takes the same port.
  const int port = listener->port();
  listener.reset();
  channels::mllp::ListenerOptions o;
  o.port = port;
  auto l = channels::mllp::MllpListener::start(o, peer);
  BOOST_REQUIRE(l.has_value());
  listener = std::move(*l);
  auto r = send(d, adtA04("K2"));
  BOOST_TEST(static_cast<int>(r.status) == static_cast<int>(core::DeliveryStatus::kOk));
  BOOST_TEST(r.response.find("MSA-2 K2") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(an_ack_frame_with_a_broken_end_is_retry) {
  auto listening = channels::mllp::listenTcp("127.0.0.1", 0);
  BOOST_REQUIRE(listening.has_value());
  const int port = channels::mllp::boundPort(*listening);
  std::thread peer([&] {
    channels::mllp::Socket s(::accept(listening->fd(), nullptr, nullptr));
    hl7v2::MllpDeframer deframer;
    while (true) {
      auto bytes = channels::mllp::readSome(s, 65536, 10000);
      if (!bytes || bytes->empty()) return;
      deframer.feed(*bytes);
      if (auto m = deframer.next()) {
        // 0x1C followed by something else than 0x0D.
        std::string broken = "\x0b" + ack(**m, hl7v2::AckCode::kAA) + "\x1cX";
        (void)channels::mllp::writeAll(s, broken, 5000);
        (void)channels::mllp::readSome(s, 65536, 10000);  // until the destination hangs up
        return;
      }
    }
  });
  MllpDestinationConfig c;
  c.host = "127.0.0.1";
  c.port = port;
  c.ackTimeoutMs = 10000;
  MllpDestination d(c);
  core::Metadata metadata;
  core::DeliveryRequest r;
  const std::string payload = adtA04("OUT10");
  r.payload = payload;
  r.metadata = &metadata;
  auto result = d.send(r);
  peer.join();
  BOOST_TEST(static_cast<int>(result.status) == static_cast<int>(core::DeliveryStatus::kRetry));
  BOOST_TEST(result.response.find("garbled ACK") == 0u, result.response);
}
