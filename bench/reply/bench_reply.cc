// bench/reply: what the reply destination spends composing one confirmation (no network): the
// shipped whatsapp-meta channel's reply destination renders conf/replies/appointment-confirmed.txt
// over an appointment Bundle, in a loop on one thread; beside it, the Bundle's parse alone into
// FHIRPath nodes, for scale. The journey (bench/e2e) does this once per message.
// Usage: bench_reply [SECONDS] [RUNS] [BUNDLE]; BENCH_COMPOSE_ONLY=1 skips the parse-only line.
#include <cstdio>
#include <cstdlib>
#include <string>

#include <rapidjson/document.h>

#include "bench/bench_support.h"
#include "bench/shipped_reply.h"
#include "channels/reply/reply_destination.h"
#include "engine/core/config.h"
#include "engine/core/heap.h"
#include "engine/fhirpath/fhirpath.h"

using namespace switchboard;

namespace {

template <typename F>
void measure(const char* label, double seconds, int runs, F&& once) {
  const benchmarks::Rate rate = benchmarks::medianRate(seconds, runs, once);
  std::printf(
      "%-14s %9.0f per CPU second (%6.1f us each), %9.0f per wall second (medians of %d runs of "
      "%.1f s)\n",
      label, rate.cpu, 1e6 / rate.cpu, rate.wall, runs, seconds);
}

}  // namespace

int main(int argc, char** argv) {
  core::keepFreedMemory();  // as `switchboard serve`, whose work this measures
  const double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
  const int runs = argc > 2 ? std::atoi(argv[2]) : 3;
  const std::string root = SWITCHBOARD_SOURCE_DIR;
  const std::string bundlePath =
      argc > 3 ? argv[3] : root + "/tests/data/reply/appointment-bundle.json";
  const std::string bundle = benchmarks::readFile(bundlePath);

  auto clock = std::make_shared<core::SystemClock>();
  auto destination = benchmarks::shippedReplyDestination(root, clock, "bench_reply");
  if (!destination) return 1;
  // What the engine hands the destination after the EHR accepted the Bundle.
  const core::Metadata metadata = benchmarks::acceptedReplyMetadata(
      *clock, R"({"entry":[{"status":"201 Created","location":"Patient/7/_history/1"},)"
              R"({"status":"201 Created","location":"Appointment/12/_history/1"}]})");
  const core::DeliveryRequest request = benchmarks::replyRequest(bundle, &metadata);

  auto first = destination->compose(request);
  if (!first || first->message.text.empty()) {
    std::fprintf(stderr, "bench_reply: compose failed: %s\n",
                 first ? "empty text" : first.error().message.c_str());
    return 1;
  }
  std::printf("Bundle %zu bytes (%s); confirmation %zu bytes\n", bundle.size(), bundlePath.c_str(),
              first->message.text.size());
  if (std::getenv("BENCH_COMPOSE_ONLY") == nullptr) {  // set it for profiles of compose alone
    measure("parse only:", seconds, runs, [&] {
      auto node = fhirpath::parseJsonResource(bundle);
      if (!node) std::abort();
    });
  }
  measure("compose:", seconds, runs, [&] {
    auto composed = destination->compose(request);
    if (!composed) std::abort();
  });
  return 0;
}
