// The FHIR destination against a real FHIR R4 server (Medplum FhirRouter + MemoryRepository,
// every written resource validated), including its OAuth2 token endpoint for client secrets and
// SMART Backend Services assertions.
#define BOOST_TEST_MODULE channel_fhir
#include <boost/test/unit_test.hpp>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <Poco/Net/ServerSocket.h>
#include <rapidjson/document.h>

#include <fstream>

#include "channels/fhir/fhir_destination.h"
#include "tests/support/node_peer.h"

using namespace switchboard;
using namespace switchboard::channels::fhir;
using switchboard::testing::NodePeer;
using switchboard::testing::peerRequest;

namespace {

const std::string kPatientUrn = "urn:uuid:5b0c5f0e-7c1a-4e3a-9d61-1f2a3b4c5d6e";

std::string bundle(const std::string& phoneEncoded, const std::string& apptId, bool valid = true) {
  std::string appointment = std::string(R"({"resourceType":"Appointment","identifier":[{"system":"urn:switchboard:appointment","value":")") +
                            apptId + R"("}],"status":"booked",)" +
                            (valid ? R"("start":"2026-12-03T09:00:00-05:00","end":"2026-12-03T09:30:00-05:00",)"
                                   : R"("start":"2026-12-03T09:00:00-05:00",)") +
                            R"("participant":[{"actor":{"reference":")" + kPatientUrn + R"("},"status":"accepted"}]})";
  return std::string(R"({"resourceType":"Bundle","type":"transaction","entry":[)") +
         R"({"fullUrl":")" + kPatientUrn + R"(","resource":{"resourceType":"Patient","identifier":[{"system":"urn:switchboard:whatsapp","value":"+15551234567"}],"name":[{"family":"Núñez","given":["José"]}],"birthDate":"1990-02-03"},"request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=urn:switchboard:whatsapp|)" +
         phoneEncoded + R"("}},)" + R"({"fullUrl":"urn:uuid:0e7a1c2b-3d4e-4f5a-8b6c-7d8e9f0a1b2c","resource":)" + appointment +
         R"(,"request":{"method":"POST","url":"Appointment","ifNoneExist":"identifier=urn:switchboard:appointment|)" + apptId + R"("}}]})";
}

core::DeliveryRequest request(const std::string& payload, int attempt = 1) {
  static core::Metadata none;
  core::DeliveryRequest r;
  r.deliveryId = 7;
  r.messageId = 3;
  r.channelId = "test";
  r.destination = "ehr";
  r.attempt = attempt;
  r.payload = payload;
  r.contentType = "application/fhir+json";
  r.metadata = &none;
  return r;
}

int countResources(int port, const std::string& query) {
  auto r = peerRequest(port, "GET", query);
  rapidjson::Document d;
  d.Parse(r.body.c_str());
  if (d.HasParseError() || !d.IsObject()) return -1;
  return d.HasMember("entry") ? static_cast<int>(d["entry"].Size()) : 0;
}

std::unique_ptr<FhirDestination> destination(const std::string& base, AuthConfig auth = {}) {
  FhirDestinationConfig c;
  c.baseUrl = base;
  c.timeout = std::chrono::milliseconds(5000);
  c.auth = std::move(auth);
  static core::SystemClock clock;
  return std::make_unique<FhirDestination>(std::move(c), clock);
}

struct Keys {
  std::string privatePem;
  std::filesystem::path publicFile;
};

Keys makeKey(bool ec) {
  EVP_PKEY* key = ec ? EVP_EC_gen("P-384") : EVP_RSA_gen(2048);
  BOOST_REQUIRE(key != nullptr);
  BIO* priv = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(priv, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(priv, &data);
  Keys k;
  k.privatePem.assign(data, static_cast<std::size_t>(n));
  BIO_free(priv);
  BIO* pub = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(pub, key);
  n = BIO_get_mem_data(pub, &data);
  static int counter = 0;
  k.publicFile = std::filesystem::temp_directory_path() /
                 ("sb-pub-" + std::to_string(::getpid()) + "-" + std::to_string(++counter) + (ec ? "-ec.pem" : "-rsa.pem"));
  std::ofstream(k.publicFile) << std::string(data, static_cast<std::size_t>(n));
  BIO_free(pub);
  EVP_PKEY_free(key);
  return k;
}

}  // namespace

BOOST_AUTO_TEST_CASE(transaction_is_created_once_and_replays_change_nothing) {
  NodePeer server("fhir-server.mjs");
  BOOST_REQUIRE_MESSAGE(server.error().empty(), server.error());
  auto dest = destination(server.baseUrl());
  const std::string payload = bundle("%2B15551234567", "A-1");

  auto first = dest->send(request(payload));
  BOOST_TEST_INFO(first.response);
  BOOST_TEST(static_cast<int>(first.status) == static_cast<int>(core::DeliveryStatus::kOk));
  BOOST_TEST(first.repeatable);  // every entry is a conditional create: the second send below
  rapidjson::Document summary;
  summary.Parse(first.response.c_str());
  BOOST_REQUIRE(summary.IsObject() && summary.HasMember("entry"));
  BOOST_TEST(summary["entry"].Size() == 2u);
  BOOST_TEST(std::string(summary["entry"][0]["status"].GetString()).starts_with("201"));
  BOOST_TEST(std::string(summary["entry"][0]["location"].GetString()).starts_with("Patient/"));
  BOOST_TEST(std::string(summary["entry"][1]["location"].GetString()).starts_with("Appointment/"));

  auto second = dest->send(request(payload, 2));
  BOOST_TEST(static_cast<int>(second.status) == static_cast<int>(core::DeliveryStatus::kOk));
  rapidjson::Document again;
  again.Parse(second.response.c_str());
  BOOST_TEST(std::string(again["entry"][0]["status"].GetString()).starts_with("200"));
  BOOST_TEST(std::string(again["entry"][0]["location"].GetString()) ==
             std::string(summary["entry"][0]["location"].GetString()));
  BOOST_TEST(countResources(server.port(), "/Patient") == 1);
  BOOST_TEST(countResources(server.port(), "/Appointment") == 1);
  // The Appointment references the server's Patient id, not the urn:uuid.
  auto appt = peerRequest(server.port(), "GET", "/" + std::string(summary["entry"][1]["location"].GetString()));
  BOOST_TEST(appt.body.find("\"reference\":\"Patient/") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(only_bundles_of_conditional_or_idempotent_entries_are_repeatable) {
  auto repeatable = [](const std::string& json) {
    rapidjson::Document d;
    d.Parse(json.c_str());
    BOOST_REQUIRE(!d.HasParseError());
    return repeatableBundle(d);
  };
  BOOST_TEST(repeatable(bundle("%2B15551234567", "A-1")));
  const std::string head = R"({"resourceType":"Bundle","type":"transaction","entry":[)";
  const std::string conditional =
      R"({"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=a|b"}})";
  auto with = [&](const std::string& request) {
    return head + conditional + R"(,{"resource":{"resourceType":"Patient"},"request":)" + request + "}]}";
  };
  BOOST_TEST(repeatable(with(R"({"method":"PUT","url":"Patient?identifier=a|c"})")));
  BOOST_TEST(repeatable(with(R"({"method":"DELETE","url":"Patient/1"})")));
  BOOST_TEST(repeatable(with(R"({"method":"GET","url":"Patient/1"})")));
  BOOST_TEST(!repeatable(with(R"({"method":"POST","url":"Patient"})")));  // a second Patient
  BOOST_TEST(!repeatable(with(R"({"method":"POST","url":"Patient","ifNoneExist":""})")));
  BOOST_TEST(!repeatable(with(R"({"method":"PATCH","url":"Patient/1"})")));
  BOOST_TEST(!repeatable(with(R"({"url":"Patient"})")));
  BOOST_TEST(!repeatable(head + conditional + R"(,{"resource":{"resourceType":"Patient"}}]})"));
  BOOST_TEST(!repeatable(R"({"resourceType":"Bundle","type":"transaction","entry":[]})"));
  BOOST_TEST(!repeatable(R"({"resourceType":"Bundle","type":"transaction"})"));
}

BOOST_AUTO_TEST_CASE(invalid_resources_fail_permanently_with_the_servers_issues) {
  NodePeer server("fhir-server.mjs");
  BOOST_REQUIRE_MESSAGE(server.error().empty(), server.error());
  auto dest = destination(server.baseUrl());
  auto result = dest->send(request(bundle("%2B15551234567", "A-2", /*valid=*/false)));
  BOOST_TEST(static_cast<int>(result.status) == static_cast<int>(core::DeliveryStatus::kFail));
  BOOST_TEST(result.responseCode == 400);
  BOOST_TEST(result.response.find("\"issues\"") != std::string::npos);
  BOOST_TEST(result.response.find("app-2") != std::string::npos);
  BOOST_TEST(countResources(server.port(), "/Appointment") == 0);

  auto notFhir = dest->send(request("{\"hello\":1}"));
  BOOST_TEST(static_cast<int>(notFhir.status) == static_cast<int>(core::DeliveryStatus::kFail));

  // A resource on its own is a plain create: posted twice, it would be created twice.
  auto standalone = dest->send(request(R"({"resourceType":"Patient","name":[{"family":"Solo"}]})"));
  BOOST_TEST_INFO(standalone.response);
  BOOST_TEST(static_cast<int>(standalone.status) == static_cast<int>(core::DeliveryStatus::kOk));
  BOOST_TEST(!standalone.repeatable);
}

BOOST_AUTO_TEST_CASE(unavailable_server_is_retried_and_retry_after_is_honoured) {
  NodePeer server("fhir-server.mjs");
  BOOST_REQUIRE_MESSAGE(server.error().empty(), server.error());
  auto dest = destination(server.baseUrl());
  peerRequest(server.port(), "POST", "/_control/fail", R"({"status":503,"count":1,"retryAfter":"7"})");
  auto busy = dest->send(request(bundle("%2B15551234567", "A-3")));
  BOOST_TEST(static_cast<int>(busy.status) == static_cast<int>(core::DeliveryStatus::kRetry));
  BOOST_TEST(busy.responseCode == 503);
  BOOST_REQUIRE(busy.retryAfter.has_value());
  BOOST_TEST(busy.retryAfter->count() == 7000);
  peerRequest(server.port(), "POST", "/_control/fail", R"({"status":429,"count":1,"retryAfter":"2"})");
  auto throttled = dest->send(request(bundle("%2B15551234567", "A-3")));
  BOOST_TEST(static_cast<int>(throttled.status) == static_cast<int>(core::DeliveryStatus::kRetry));
  BOOST_TEST(throttled.retryAfter->count() == 2000);
  auto ok = dest->send(request(bundle("%2B15551234567", "A-3")));
  BOOST_TEST(static_cast<int>(ok.status) == static_cast<int>(core::DeliveryStatus::kOk));
  BOOST_TEST(countResources(server.port(), "/Appointment") == 1);
}

BOOST_AUTO_TEST_CASE(connection_refused_and_timeouts_are_transient) {
  int freePort = 0;
  {
    Poco::Net::ServerSocket probe(Poco::Net::SocketAddress("127.0.0.1", 0));
    freePort = probe.address().port();
  }
  auto refused = destination("http://127.0.0.1:" + std::to_string(freePort))->send(request(bundle("x", "A")));
  BOOST_TEST(static_cast<int>(refused.status) == static_cast<int>(core::DeliveryStatus::kRetry));

  // A listening socket that never answers: the request times out.
  Poco::Net::ServerSocket silent(Poco::Net::SocketAddress("127.0.0.1", 0));
  FhirDestinationConfig c;
  c.baseUrl = "http://127.0.0.1:" + std::to_string(silent.address().port());
  c.timeout = std::chrono::milliseconds(300);
  core::SystemClock clock;
  FhirDestination slow(std::move(c), clock);
  auto timedOut = slow.send(request(bundle("x", "A")));
  BOOST_TEST(static_cast<int>(timedOut.status) == static_cast<int>(core::DeliveryStatus::kRetry));
  BOOST_TEST(timedOut.response.find("timeout") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(send_many_posts_a_pass_at_once_and_answers_each_in_its_place) {
  NodePeer server("fhir-server.mjs");
  BOOST_REQUIRE_MESSAGE(server.error().empty(), server.error());
  auto dest = destination(server.baseUrl());
  const std::string payloads[] = {bundle("%2B15551234567", "M-1"),
                                  bundle("%2B15551234567", "M-2", /*valid=*/false), "{\"hello\":1}",
                                  bundle("%2B15559876543", "M-3")};
  std::vector<core::DeliveryRequest> requests;
  for (const auto& p : payloads) requests.push_back(request(p));
  std::vector<const core::DeliveryRequest*> pointers;
  for (const auto& r : requests) pointers.push_back(&r);
  std::vector<core::SentDelivery> sent(requests.size());
  dest->sendMany(pointers, sent);
  auto status = [&](std::size_t i) { return static_cast<int>(sent[i].result.status); };
  BOOST_TEST_INFO(sent[0].result.response);
  BOOST_TEST(status(0) == static_cast<int>(core::DeliveryStatus::kOk));
  BOOST_TEST(sent[0].result.repeatable);
  BOOST_TEST(status(1) == static_cast<int>(core::DeliveryStatus::kFail));
  BOOST_TEST(sent[1].result.responseCode == 400);
  BOOST_TEST(sent[1].result.response.find("app-2") != std::string::npos);
  BOOST_TEST(status(2) == static_cast<int>(core::DeliveryStatus::kFail));  // not sent: not FHIR
  BOOST_TEST(sent[2].result.responseCode == 0);
  BOOST_TEST(status(3) == static_cast<int>(core::DeliveryStatus::kOk));
  BOOST_TEST(countResources(server.port(), "/Appointment") == 2);
  BOOST_TEST(countResources(server.port(), "/Patient") == 2);
  // Each success names the Appointment its own Bundle created.
  for (std::size_t i : {0u, 3u}) {
    rapidjson::Document summary;
    summary.Parse(sent[i].result.response.c_str());
    BOOST_REQUIRE(summary.IsObject() && summary.HasMember("entry"));
    auto appt = peerRequest(server.port(), "GET",
                            "/" + std::string(summary["entry"][1]["location"].GetString()));
    BOOST_TEST(appt.body.find(i == 0 ? "M-1" : "M-3") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(client_credentials_token_is_fetched_once_and_reused) {
  NodePeer server("fhir-server.mjs", {{"PEER_REQUIRE_TOKEN", "1"}, {"PEER_CLIENT_ID", "switchboard"},
                                      {"PEER_CLIENT_SECRET", "s3cr:t&+"}});
  BOOST_REQUIRE_MESSAGE(server.error().empty(), server.error());
  // Without credentials the server refuses.
  auto anonymous = destination(server.baseUrl())->send(request(bundle("%2B15551234567", "B-1")));
  BOOST_TEST(anonymous.responseCode == 401);

  AuthConfig auth;
  auth.kind = AuthKind::kClientSecret;
  auth.tokenUrl = server.baseUrl() + "/auth/token";
  auth.clientId = "switchboard";
  auth.clientSecret = "s3cr:t&+";
  auth.scope = "system/Patient.cu system/Appointment.cu";
  auto dest = destination(server.baseUrl(), auth);
  for (int i = 0; i < 3; ++i) {
    auto r = dest->send(request(bundle("%2B15551234567", "B-1")));
    BOOST_TEST_INFO(r.response);
    BOOST_TEST(static_cast<int>(r.status) == static_cast<int>(core::DeliveryStatus::kOk));
  }
  BOOST_TEST(dest->authenticator().tokensFetched() == 1);

  auth.clientSecret = "wrong";
  auto bad = destination(server.baseUrl(), auth)->send(request(bundle("%2B15551234567", "B-1")));
  BOOST_TEST(static_cast<int>(bad.status) == static_cast<int>(core::DeliveryStatus::kRetry));
  BOOST_TEST(bad.response.find("invalid_client") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(smart_backend_services_with_rs384_and_es384) {
  for (bool ec : {false, true}) {
    Keys keys = makeKey(ec);
    NodePeer server("fhir-server.mjs", {{"PEER_REQUIRE_TOKEN", "1"}, {"PEER_CLIENT_ID", "sb-client"},
                                        {"PEER_CLIENT_PUBLIC_KEY", keys.publicFile.string()},
                                        {"PEER_TOKEN_TTL", "20"}});
    BOOST_REQUIRE_MESSAGE(server.error().empty(), server.error());
    AuthConfig auth;
    auth.kind = AuthKind::kSmartBackend;
    auth.clientId = "sb-client";
    auth.privateKeyPem = keys.privatePem;
    auth.algorithm = ec ? "ES384" : "RS384";
    auth.keyId = "key-1";
    auth.scope = "system/Patient.cu";
    auth.refreshMargin = std::chrono::seconds(30);  // longer than the TTL: every send needs a new token
    auto dest = destination(server.baseUrl(), auth);  // token URL discovered from .well-known
    for (int i = 0; i < 3; ++i) {
      auto r = dest->send(request(bundle("%2B15551234567", "C-1")));
      BOOST_TEST_INFO(auth.algorithm << ": " << r.response);
      BOOST_TEST(static_cast<int>(r.status) == static_cast<int>(core::DeliveryStatus::kOk));
    }
    // Three assertions, three distinct jti values (the server rejects a replayed jti).
    BOOST_TEST(dest->authenticator().tokensFetched() == 3);

    // A key the server does not know is refused.
    Keys other = makeKey(ec);
    auth.privateKeyPem = other.privatePem;
    auto refused = destination(server.baseUrl(), auth)->send(request(bundle("%2B15551234567", "C-1")));
    BOOST_TEST(static_cast<int>(refused.status) == static_cast<int>(core::DeliveryStatus::kRetry));
    BOOST_TEST(refused.response.find("invalid_client") != std::string::npos);
    std::filesystem::remove(keys.publicFile);
    std::filesystem::remove(other.publicFile);
  }
}

// Runs openssl to make a CA and a server certificate for `host` signed by it; returns the dir.
std::filesystem::path makeCertificates(const std::string& host) {
  auto dir = std::filesystem::temp_directory_path() / ("sb-tls-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string d = dir.string();
  const std::string script =
      "set -e; cd '" + d + "'; "
      "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj '/CN=Switchboard Test CA' 2>/dev/null; "
      "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj '/CN=" + host + "' 2>/dev/null; "
      "printf 'subjectAltName=DNS:" + host + "\\nbasicConstraints=CA:FALSE\\n' > ext.cnf; "
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile ext.cnf 2>/dev/null; "
      "openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem -days 2 -subj '/CN=Other CA' 2>/dev/null";
  BOOST_REQUIRE_EQUAL(std::system(("bash -c \"" + script + "\"").c_str()), 0);
  return dir;
}

BOOST_AUTO_TEST_CASE(tls_verifies_the_server_against_the_configured_ca) {
  auto certs = makeCertificates("localhost");
  NodePeer server("fhir-server.mjs", {}, {"--tls-cert", (certs / "server.pem").string(), "--tls-key", (certs / "server.key").string()});
  BOOST_REQUIRE_MESSAGE(server.error().empty(), server.error());
  const std::string base = "https://localhost:" + std::to_string(server.port());
  core::SystemClock clock;
  auto withCa = [&](const std::string& caFile) {
    FhirDestinationConfig c;
    c.baseUrl = base;
    c.timeout = std::chrono::milliseconds(5000);
    c.caFile = caFile;
    return std::make_unique<FhirDestination>(std::move(c), clock);
  };
  auto trusted = withCa((certs / "ca.pem").string())->send(request(bundle("%2B15551234567", "T-1")));
  BOOST_TEST_INFO(trusted.response);
  BOOST_TEST(static_cast<int>(trusted.status) == static_cast<int>(core::DeliveryStatus::kOk));
  // A certificate from a CA we do not trust is refused (and retried: the operator may fix the CA).
  auto untrusted = withCa((certs / "other.pem").string())->send(request(bundle("%2B15551234567", "T-1")));
  BOOST_TEST(static_cast<int>(untrusted.status) == static_cast<int>(core::DeliveryStatus::kRetry));
  BOOST_TEST(untrusted.response.find("TLS") != std::string::npos, untrusted.response);
  // The system CAs do not know our test CA either.
  auto system = withCa("")->send(request(bundle("%2B15551234567", "T-1")));
  BOOST_TEST(static_cast<int>(system.status) == static_cast<int>(core::DeliveryStatus::kRetry));
  // The right CA but another host name than the certificate's: refused.
  FhirDestinationConfig byIp;
  byIp.baseUrl = "https://127.0.0.1:" + std::to_string(server.port());
  byIp.caFile = (certs / "ca.pem").string();
  auto mismatch = FhirDestination(std::move(byIp), clock).send(request(bundle("%2B15551234567", "T-1")));
  BOOST_TEST(static_cast<int>(mismatch.status) == static_cast<int>(core::DeliveryStatus::kRetry), mismatch.response);
  std::filesystem::remove_all(certs);
}

BOOST_AUTO_TEST_CASE(config_errors_name_the_field) {
  rapidjson::Document d;
  d.Parse(R"({"base_url":"ftp://x","auth":{"type":"smart_backend","client_id":"a","kid":"k","private_key":"not a key"}})");
  core::ConfigReader reader(d, "conf/channels/x.json", "/destinations/0");
  core::ConnectorContext ctx;
  auto dest = FhirDestination::create(reader, ctx);
  BOOST_REQUIRE(!dest.has_value());
  BOOST_TEST_INFO(dest.error().message);
  BOOST_TEST(dest.error().message.find("base_url") != std::string::npos);

  rapidjson::Document d2;
  d2.Parse(R"({"base_url":"https://ehr.example/fhir","auth":{"type":"smart_backend","client_id":"a","kid":"k","private_key":"not a key"}})");
  core::ConfigReader reader2(d2, "conf/channels/x.json", "/destinations/0");
  auto dest2 = FhirDestination::create(reader2, ctx);
  BOOST_REQUIRE(!dest2.has_value());
  BOOST_TEST(dest2.error().message.find("private_key") != std::string::npos);
}
