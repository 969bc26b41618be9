// Maps the seed WhatsApp Flow submission (8x8 body) with mappings/whatsapp-flow-appointment.json
// in a loop on one thread and prints submissions per second (median of runs) both per second of
// wall time and per second of the thread's CPU time (what one core does, whatever else the shared
// machine runs), heap allocations and bytes per submission; the same through the general FHIRPath
// engine alone (Mapping::runGeneral, the reference of the compiled plans); with engine/fhir built,
// also mapped-and-validated per second (with the fhir-validate stage's default options). Usage:
// bench_mapping [SECONDS_PER_RUN] [RUNS]; BENCH_MAP_ONLY=1 skips validation, BENCH_PLANS_ONLY=1 all
// but the compiled plans (for profiling).
// Thread-safety: single-threaded.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <new>
#include <sstream>
#include <string>
#include <vector>

#include <rapidjson/document.h>

#include "bench/bench_support.h"
#include "engine/core/heap.h"
#include "engine/mapping/mapping.h"
#ifdef SWITCHBOARD_BENCH_VALIDATE
#include "engine/fhir/validator.h"
#endif

namespace {
std::atomic<std::uint64_t> gAllocs{0}, gBytes{0};
}  // namespace

void* operator new(std::size_t n) {
  gAllocs.fetch_add(1, std::memory_order_relaxed);
  gBytes.fetch_add(n, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

using switchboard::benchmarks::readFile;

// Median rates of `runs` runs, printed as one line.
template <typename F>
void measure(const char* label, double seconds, int runs, F&& once) {
  const switchboard::benchmarks::Rate rate = switchboard::benchmarks::medianRate(seconds, runs, once);
  std::printf("%s %9.0f submissions/s per CPU second, %9.0f per wall second (medians of %d runs of "
              "%.1f s)\n",
              label, rate.cpu, rate.wall, runs, seconds);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace switchboard;
  core::keepFreedMemory();  // as `switchboard serve`, whose work this measures
  const double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
  const int runs = argc > 2 ? std::atoi(argv[2]) : 5;
  const std::string root = SWITCHBOARD_SOURCE_DIR;
  auto mapping = mapping::Mapping::loadFile(root + "/mappings/whatsapp-flow-appointment.json");
  if (!mapping) {
    std::fprintf(stderr, "bench_mapping: %s\n", mapping.error().message.c_str());
    return 1;
  }
  const std::string body = readFile(root + "/tests/data/mapping/seed-8x8-flow-submission.json");
  fhirpath::Environment env;
  env.setVariable("facility", "HealthCare Clinic");
  env.setVariable("channel", "bench");
  std::size_t outBytes = 0;
  auto mapWith = [&](bool general) {
    return [&, general] {
      auto out = general ? (*mapping)->runGeneral(body, env) : (*mapping)->run(body, env);
      if (!out) {
        std::fprintf(stderr, "bench_mapping: %s\n", out.error().message.c_str());
        std::exit(1);
      }
      outBytes = out->payload.size();
    };
  };
  auto perSubmission = [&](auto&& once, double& allocs, double& bytes) {
    once();
    const std::uint64_t a0 = gAllocs, b0 = gBytes;
    for (int i = 0; i < 100; ++i) once();
    allocs = (gAllocs - a0) / 100.0;
    bytes = (gBytes - b0) / 100.0;
  };
  double allocs = 0, bytes = 0, generalAllocs = 0, generalBytes = 0;
  perSubmission(mapWith(false), allocs, bytes);
  perSubmission(mapWith(true), generalAllocs, generalBytes);
  const bool planned =
      (*mapping)->planned() && (*mapping)->runPlanned(body, env).has_value();

  std::printf("input %zu bytes (8x8 body), output %zu bytes (Bundle of 5 resources); %s\n",
              body.size(), outBytes,
              planned ? "compiled plans decide it" : "the plans decline it: general engine");
  if (!std::getenv("BENCH_PLANS_ONLY")) {
    measure("parse only:    ", seconds, runs, [&] {
      rapidjson::Document d;  // for scale: a RapidJSON parse of the same body
      d.Parse(body.data(), body.size());
      if (d.HasParseError()) std::exit(1);
    });
  }
  measure("map:           ", seconds, runs, mapWith(false));
  std::printf("                %.0f allocations, %.0f bytes allocated per submission\n", allocs,
              bytes);
  if (!std::getenv("BENCH_PLANS_ONLY")) {
    measure("map (general): ", seconds, runs, mapWith(true));
    std::printf("                %.0f allocations, %.0f bytes allocated per submission\n",
                generalAllocs, generalBytes);
  }
#ifdef SWITCHBOARD_BENCH_VALIDATE
  if (std::getenv("BENCH_MAP_ONLY")) return 0;
  auto validator = fhir::Validator::fromDirectory(root + "/fhir-profiles");
  if (!validator) {
    std::fprintf(stderr, "bench_mapping: %s\n", validator.error().message.c_str());
    return 1;
  }
  // As the channels' fhir-validate stage (conf/channels/whatsapp-8x8.json) runs: the mapped text
  // with the stage's default options (best-practice dom-6 off); BENCH_BEST_PRACTICE=1 reports the
  // five dom-6 warnings too, as this line did before (for comparisons with older binaries).
  fhir::ValidationOptions stageOptions;
  stageOptions.bestPractice = std::getenv("BENCH_BEST_PRACTICE") != nullptr;
  auto mapAndValidate = [&] {
    auto out = (*mapping)->run(body, env);
    if (!out) std::exit(1);
    auto issues = validator->validateText(out->payload, stageOptions);
    if (fhir::hasErrors(issues)) {
      std::fprintf(stderr, "bench_mapping: %s\n", fhir::toOperationOutcomeJson(issues).c_str());
      std::exit(1);
    }
  };
  measure("map + validate:", seconds, runs, mapAndValidate);
#endif
  return 0;
}
