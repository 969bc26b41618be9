// bench/delivery: the JSON work of one message's deliveries, without the network. For the mapped
// transaction Bundle (tests/data/fhir/seed-flow-bundle.json by default), in a loop on one thread:
// the fhir destination's read of the payload (routePayload), its summary of the EHR's
// transaction-response (summariseSuccess, over the answer bench/e2e's sink gives: every entry's
// resource with an id and meta, and its response) and of a 400 OperationOutcome
// (summariseFailure); the reply destination's %appointmentNumber from that summary and the whole
// confirmation (compose, the shipped conf/channels/whatsapp-meta.json reply destination).
// and the provider's id of the sent reply from Meta's answer (outboundIdFrom).
// Usage: bench_delivery [SECONDS] [RUNS] [BUNDLE]        rates (medians of RUNS runs)
//        bench_delivery --count N [BUNDLE]              each operation N times, untimed (callgrind)
// BENCH_HOLD_ARENA=1 holds the thread's JSON arena throughout, so that every text is read by
// RapidJSON (and the reply's Bundle by fhirpath::parseJsonResource), as before the arena was used.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "bench/bench_support.h"
#include "bench/shipped_reply.h"
#include "channels/fhir/fhir_destination.h"
#include "channels/reply/provider_api.h"
#include "channels/reply/reply_destination.h"
#include "engine/core/config.h"
#include "engine/core/heap.h"
#include "engine/fhir/json_arena.h"

using namespace switchboard;

namespace {

// The transaction-response bench/e2e/fhir-server-timed.mjs --sink answers `bundle` with: each
// entry's resource with a new id and meta, and status 201 Created, location, etag, lastModified.
std::string sinkResponse(const std::string& bundle) {
  rapidjson::Document in;
  in.Parse(bundle.data(), bundle.size());
  rapidjson::Document out(rapidjson::kObjectType);
  auto& a = out.GetAllocator();
  out.AddMember("resourceType", "Bundle", a);
  out.AddMember("type", "transaction-response", a);
  rapidjson::Value entries(rapidjson::kArrayType);
  const std::string lastUpdated = "2026-12-02T17:00:00.000Z";
  int n = 0;
  for (const auto& e : in["entry"].GetArray()) {
    char id[40];
    std::snprintf(id, sizeof id, "0b6f3c2e-5a41-4d7e-9c1a-%012d", ++n);
    rapidjson::Value resource(e["resource"], a);
    const std::string type = resource["resourceType"].GetString();
    resource.AddMember("id", rapidjson::Value(id, a), a);
    rapidjson::Value meta(rapidjson::kObjectType);
    meta.AddMember("versionId", "1", a);
    meta.AddMember("lastUpdated", rapidjson::Value(lastUpdated.c_str(), a), a);
    resource.AddMember("meta", meta, a);
    rapidjson::Value response(rapidjson::kObjectType);
    response.AddMember("status", "201 Created", a);
    const std::string location = type + "/" + id + "/_history/1";
    response.AddMember("location", rapidjson::Value(location.c_str(), a), a);
    response.AddMember("etag", "W/\"1\"", a);
    response.AddMember("lastModified", rapidjson::Value(lastUpdated.c_str(), a), a);
    rapidjson::Value entry(rapidjson::kObjectType);
    entry.AddMember("resource", resource, a);
    entry.AddMember("response", response, a);
    entries.PushBack(entry, a);
  }
  out.AddMember("entry", entries, a);
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  out.Accept(w);
  return std::string(buf.GetString(), buf.GetSize());
}

const char* const kOutcome =
    R"({"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid",)"
    R"("details":{"text":"Missing required property"},"expression":["Bundle.entry[3].resource.end"]},)"
    R"({"severity":"error","code":"invariant","diagnostics":"app-3: Only proposed or cancelled )"
    R"(appointments can be missing start/end dates","expression":["Bundle.entry[3].resource"]}]})";

template <typename F>
void measure(const char* label, double seconds, int runs, F&& once) {
  const benchmarks::Rate rate = benchmarks::medianRate(seconds, runs, once);
  std::printf(
      "%-18s %6.2f us per call (CPU), %9.0f per wall second (medians of %d runs of %.1f s)\n",
      label, 1e6 / rate.cpu, rate.wall, runs, seconds);
}

}  // namespace

int main(int argc, char** argv) {
  core::keepFreedMemory();  // as `switchboard serve`, whose work this measures
  long count = 0;
  int arg = 1;
  if (argc > 2 && std::strcmp(argv[1], "--count") == 0) {
    count = std::atol(argv[2]);
    arg = 3;
  }
  const double seconds = count == 0 && argc > arg ? std::atof(argv[arg++]) : 2.0;
  const int runs = count == 0 && argc > arg ? std::atoi(argv[arg++]) : 3;
  const std::string root = SWITCHBOARD_SOURCE_DIR;
  const std::string bundlePath =
      argc > arg ? argv[arg] : root + "/tests/data/fhir/seed-flow-bundle.json";
  const std::string bundle = benchmarks::readFile(bundlePath);
  const std::string response = sinkResponse(bundle);
  const std::string upstream = channels::fhir::summariseSuccess(200, response, "");

  auto clock = std::make_shared<core::SystemClock>();
  auto reply = benchmarks::shippedReplyDestination(root, clock, "bench_delivery");
  if (!reply) return 1;
  const core::Metadata metadata = benchmarks::acceptedReplyMetadata(*clock, upstream);
  const core::DeliveryRequest request = benchmarks::replyRequest(bundle, &metadata);

  // Checks that every operation does its work on these inputs before timing it.
  const auto route = channels::fhir::routePayload(bundle);
  const auto composed = reply->compose(request);
  const std::string number = channels::reply::appointmentNumberFrom(upstream);
  if (!route || !route->toBase || !composed || composed->message.text.empty() || number.empty()) {
    std::fprintf(stderr, "bench_delivery: an operation failed on %s\n", bundlePath.c_str());
    return 1;
  }
  std::printf("Bundle %zu bytes (%s), transaction-response %zu, summary %zu, confirmation %zu\n",
              bundle.size(), bundlePath.c_str(), response.size(), upstream.size(),
              composed->message.text.size());

  auto doRoute = [&] {
    if (!channels::fhir::routePayload(bundle)) std::abort();
  };
  auto doSuccess = [&] {
    if (channels::fhir::summariseSuccess(200, response, "").size() != upstream.size()) std::abort();
  };
  auto doFailure = [&] {
    if (channels::fhir::summariseFailure(400, kOutcome).empty()) std::abort();
  };
  auto doNumber = [&] {
    if (channels::reply::appointmentNumberFrom(upstream).empty()) std::abort();
  };
  const std::string metaAnswer =
      R"({"messaging_product":"whatsapp","contacts":[{"input":"15551234567","wa_id":)"
      R"("15551234567"}],"messages":[{"id":"wamid.HBgLMTU1NTEyMzQ1NjcVAgARGBI1RjQyNUE3NEYxMzAzMzQ5MkEA1",)"
      R"("message_status":"accepted"}]})";
  auto doOutboundId = [&] {
    if (channels::reply::outboundIdFrom(channels::reply::Provider::kMeta, metaAnswer).empty())
      std::abort();
  };
  auto doCompose = [&] {
    if (!reply->compose(request)) std::abort();
  };
  std::optional<fhir::ArenaDocument> held;
  if (const char* hold = std::getenv("BENCH_HOLD_ARENA"); hold && *hold == '1') {
    held.emplace(*fhir::ArenaDocument::read("{}"));
    std::printf("(the thread's arena is held: RapidJSON reads everything)\n");
  }
  if (count > 0) {
    for (long i = 0; i < count; ++i) doRoute();
    for (long i = 0; i < count; ++i) doSuccess();
    for (long i = 0; i < count; ++i) doFailure();
    for (long i = 0; i < count; ++i) doNumber();
    for (long i = 0; i < count; ++i) doCompose();
    for (long i = 0; i < count; ++i) doOutboundId();
    return 0;
  }
  measure("routePayload:", seconds, runs, doRoute);
  measure("summariseSuccess:", seconds, runs, doSuccess);
  measure("summariseFailure:", seconds, runs, doFailure);
  measure("appointmentNumber:", seconds, runs, doNumber);
  measure("compose:", seconds, runs, doCompose);
  measure("outboundIdFrom:", seconds, runs, doOutboundId);
  return 0;
}
