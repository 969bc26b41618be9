// Maps the seed WhatsApp Flow submission (8x8 body) with mappings/whatsapp-flow-appointment.json
// in a loop on one thread and prints submissions per second (median of runs), heap allocations
// and bytes per submission; with engine/fhir built, also mapped-and-validated per second.
// Usage: bench_mapping [SECONDS_PER_RUN] [RUNS]. Thread-safety: single-threaded.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <new>
#include <sstream>
#include <string>
#include <vector>

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

using Clock = std::chrono::steady_clock;

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

template <typename F>
double runFor(double seconds, F&& once, std::uint64_t& count) {
  const auto start = Clock::now();
  const auto stop = start + std::chrono::duration<double>(seconds);
  count = 0;
  while (Clock::now() < stop) {
    for (int i = 0; i < 64; ++i) once();
    count += 64;
  }
  return count / std::chrono::duration<double>(Clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  using namespace switchboard;
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
  auto mapOnce = [&] {
    auto out = (*mapping)->run(body, env);
    if (!out) {
      std::fprintf(stderr, "bench_mapping: %s\n", out.error().message.c_str());
      std::exit(1);
    }
    outBytes = out->payload.size();
  };
  mapOnce();
  const std::uint64_t a0 = gAllocs, b0 = gBytes;
  for (int i = 0; i < 100; ++i) mapOnce();
  const double allocs = (gAllocs - a0) / 100.0, bytes = (gBytes - b0) / 100.0;

  std::vector<double> mapped;
  std::uint64_t n = 0;
  for (int r = 0; r < runs; ++r) mapped.push_back(runFor(seconds, mapOnce, n));
  std::printf("input %zu bytes (8x8 body), output %zu bytes (Bundle of 5 resources)\n", body.size(),
              outBytes);
  std::printf(
      "map:            %9.0f submissions/s (median of %d runs of %.1f s); %.0f allocations, %.0f "
      "bytes allocated per submission\n",
      median(mapped), runs, seconds, allocs, bytes);
#ifdef SWITCHBOARD_BENCH_VALIDATE
  if (std::getenv("BENCH_MAP_ONLY")) return 0;
  auto validator = fhir::Validator::fromDirectory(root + "/fhir-profiles");
  if (!validator) {
    std::fprintf(stderr, "bench_mapping: %s\n", validator.error().message.c_str());
    return 1;
  }
  auto mapAndValidate = [&] {
    auto out = (*mapping)->run(body, env);
    if (!out) std::exit(1);
    auto issues = validator->validateText(out->payload);
    if (fhir::hasErrors(issues)) {
      std::fprintf(stderr, "bench_mapping: %s\n", fhir::toOperationOutcomeJson(issues).c_str());
      std::exit(1);
    }
  };
  std::vector<double> validated;
  for (int r = 0; r < runs; ++r) validated.push_back(runFor(seconds, mapAndValidate, n));
  std::printf("map + validate: %9.0f submissions/s (median of %d runs of %.1f s)\n",
              median(validated), runs, seconds);
#endif
  return 0;
}
