// The FHIR validator alone, in a loop on one thread: validations per CPU second (median of runs)
// and heap allocations per validation, for the seed Flow's mapped transaction Bundle and a few
// other resources, each in five modes: an already parsed document with invariants, the same without
// invariants, from text (read + validate, as `switchboard validate` does), parsed with the
// fhir-validate stage's defaults (invariants, best-practice dom-6 off), and from text with the
// stage's defaults (what the fhir-validate stage and bench/mapping's map + validate pay).
// Usage: bench_validate [SECONDS_PER_RUN] [RUNS] [FILE ...] (files relative to the source tree
// or absolute; default: the set below); BENCH_VALIDATE_MODES=0 (or 1, 2, "02" ...) runs only
// those modes, e.g. for perf. Thread-safety: single-threaded.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <new>
#include <sstream>
#include <string>
#include <vector>

#include "engine/core/heap.h"
#include "engine/fhir/validator.h"

namespace {
std::atomic<std::uint64_t> gAllocs{0};
}  // namespace

void* operator new(std::size_t n) {
  gAllocs.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "bench_validate: cannot read %s\n", path.c_str());
    std::exit(2);
  }
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// CPU time of this thread, so that time the shared machine gives to other processes does not
// count.
double cpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Calls per CPU second over about `seconds` of CPU time.
template <typename F>
double runFor(double seconds, F&& once) {
  const double start = cpuSeconds();
  std::uint64_t count = 0;
  double now = start;
  while (now - start < seconds) {
    for (int i = 0; i < 32; ++i) once();
    count += 32;
    now = cpuSeconds();
  }
  return static_cast<double>(count) / (now - start);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  using namespace switchboard;
  core::keepFreedMemory();  // as `switchboard serve`, whose work this measures
  const double seconds = argc > 1 ? std::atof(argv[1]) : 1.0;
  const int runs = argc > 2 ? std::max(1, std::atoi(argv[2])) : 3;
  const std::string root = SWITCHBOARD_SOURCE_DIR;
  std::vector<std::string> files;
  for (int i = 3; i < argc; ++i) files.push_back(argv[i]);
  if (files.empty()) {
    files = {"tests/data/fhir/seed-flow-bundle.json", "tests/data/fhir/bundle_transaction.json",
             "tests/data/fhir/patient.json", "tests/data/fhir/questionnaire_response.json",
             "tests/data/fhir/appointment.json"};
  }
  auto validator = fhir::Validator::fromDirectory(root + "/fhir-profiles");
  if (!validator) {
    std::fprintf(stderr, "bench_validate: %s\n", validator.error().message.c_str());
    return 2;
  }
  std::printf("%-44s %7s %6s | %-22s | %-22s | %-22s | %-22s | %-22s\n", "file", "bytes", "issues",
              "parsed, invariants", "parsed, no invariants", "text, invariants",
              "parsed, stage options", "text, stage options");
  for (const auto& name : files) {
    const std::string text = readFile(name.starts_with("/") ? name : root + "/" + name);
    auto parsed = fhirpath::parseResource(text);
    if (!parsed) {
      std::fprintf(stderr, "bench_validate: %s: %s\n", name.c_str(),
                   parsed.error().message.c_str());
      return 2;
    }
    const fhirpath::DocumentPtr doc = parsed->document();
    fhir::ValidationOptions with, without, stage;
    without.invariants = false;
    stage.bestPractice = false;
    const std::size_t issues = validator->validate(doc, with).size();
    std::string cells;
    const char* modes = std::getenv("BENCH_VALIDATE_MODES");
    for (int mode = 0; mode < 5; ++mode) {
      if (modes && !std::strchr(modes, '0' + mode)) {
        cells += " |            (skipped)";
        continue;
      }
      auto once = [&] {
        std::size_t n = mode == 2   ? validator->validateText(text, with).size()
                        : mode == 3 ? validator->validate(doc, stage).size()
                        : mode == 4 ? validator->validateText(text, stage).size()
                                    : validator->validate(doc, mode == 0 ? with : without).size();
        if (n > 1000000) std::abort();  // keeps the call
      };
      once();
      const std::uint64_t a0 = gAllocs;
      for (int i = 0; i < 100; ++i) once();
      const double allocs = (gAllocs - a0) / 100.0;
      std::vector<double> rates;
      for (int r = 0; r < runs; ++r) rates.push_back(runFor(seconds, once));
      const double rate = median(rates);
      char cell[64];
      std::snprintf(cell, sizeof cell, " | %7.0f/s %5.1fus %4.0fa", rate, 1e6 / rate, allocs);
      cells += cell;
    }
    std::printf("%-44s %7zu %6zu%s\n", name.c_str(), text.size(), issues, cells.c_str());
  }
  std::printf(
      "(per CPU second of one thread, median of %d runs of %.1f s of CPU time; a = heap "
      "allocations per validation)\n",
      runs, seconds);
  return 0;
}
