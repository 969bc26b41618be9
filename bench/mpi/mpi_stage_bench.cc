// MPI stage benchmark: the cost of what the "mpi" pipeline stage asks of MpiService per message,
// i.e. MpiService::submit of one new source Patient (parse, normalise, block, score, then the
// store transaction: source, link, golden record rebuilt by survivorship, review items, audit)
// against a store that already holds N patients, on SQLite in a temporary file.
//
// The N patients are submitted once into a template database; every run copies that file, opens
// a service on the copy (index rebuilt from the store) and submits the same K incoming patients
// (ids "m<i>", source system "bench-stage", as the stage names them), timing each call, then
// submits them all once more (a replayed message: the known-source path, update and rematch).
// Prints each run's medians and the medians over runs, in microseconds per call.
//
// Usage: bench_mpi_stage [--patients 5000] [--calls 500] [--runs 5] [--config conf/mpi.json]
//                        [--dir /tmp/switchboard-mpi-stage-bench] [--settle N]
// --dir on a tmpfs (e.g. /dev/shm/...) takes the disk's fsync out of the figure.
// --settle N submits as the pipeline stage does (MpiStore::Durability::kDeferred) and calls
// MpiService::settle() after every N calls, as the engine does once per batch of N messages;
// 0 (the default) makes every call durable on its own (kFlushed). With N > 0 the per-call
// median leaves out the settle; the mean wall time and the CPU time per call include it.
// --stage BUNDLE (needs --settle N > 0) runs each call through the "mpi" pipeline stage itself,
// as the engine does: the incoming Patient is put in the place of the first entry's resource of
// the transaction Bundle in the file BUNDLE (e.g. tests/data/reply/appointment-bundle.json),
// process() parses it, submits and writes the Bundle back with the enterprise identifier, and
// the stage's settle() runs every N calls.
// Thread-safety: single-threaded program.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <fstream>
#include <sstream>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "engine/core/config.h"
#include "engine/mpi/mpi_service.h"
#include "engine/mpi/mpi_stage.h"
#include "synthetic.h"

using namespace switchboard::mpi;
using Clock = std::chrono::steady_clock;

namespace {

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

std::unique_ptr<MpiService> openService(const MatchConfig& config, const std::string& db) {
  auto s = MpiStore::open("sqlite3://db=" + db);
  if (!s) {
    std::fprintf(stderr, "store: %s\n", s.error().message.c_str());
    std::exit(1);
  }
  auto m = MpiService::open(config, std::move(*s));
  if (!m) {
    std::fprintf(stderr, "service: %s\n", m.error().message.c_str());
    std::exit(1);
  }
  return std::move(*m);
}

// CPU time (user + system) this process has used, in microseconds: unlike wall time it leaves
// out the wait for the disk's fsync.
double cpuMicros() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e6 +
         double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

// This process's read and write system calls and bytes written so far (/proc/self/io): per
// call they show what the store's commits cost (each log frame is a write of its header and one
// of its page; checkpoints write pages again) without tracing the process.
struct IoCounts {
  double syscr = 0, syscw = 0, wchar = 0;
};
IoCounts ioCounts() {
  IoCounts c;
  if (FILE* f = std::fopen("/proc/self/io", "r")) {
    char key[32];
    double v = 0;
    while (std::fscanf(f, "%31[^:]: %lf\n", key, &v) == 2) {
      if (std::string_view(key) == "syscr") c.syscr = v;
      if (std::string_view(key) == "syscw") c.syscw = v;
      if (std::string_view(key) == "wchar") c.wchar = v;
    }
    std::fclose(f);
  }
  return c;
}
IoCounts perCall(const IoCounts& a, const IoCounts& b, size_t calls) {
  return {(b.syscr - a.syscr) / double(calls), (b.syscw - a.syscw) / double(calls),
          (b.wchar - a.wchar) / double(calls)};
}

// The transaction Bundle of `templ` with its first entry's resource replaced by each Patient.
std::vector<std::string> bundlesOf(const std::string& templ, const std::vector<std::string>& ps) {
  std::ifstream in(templ);
  std::stringstream text;
  text << in.rdbuf();
  std::vector<std::string> out;
  for (const auto& p : ps) {
    rapidjson::Document d;
    d.Parse(text.str().c_str());
    rapidjson::Document patient(&d.GetAllocator());
    patient.Parse(p.c_str());
    if (d.HasParseError() || patient.HasParseError() || !d.HasMember("entry")) {
      std::fprintf(stderr, "%s: not a transaction Bundle\n", templ.c_str());
      std::exit(2);
    }
    d["entry"][0]["resource"] = patient.Move();
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    d.Accept(w);
    out.emplace_back(sb.GetString(), sb.GetSize());
  }
  return out;
}

// The "mpi" stage of channel "bench-stage" over mpi, made as the engine makes it.
std::unique_ptr<switchboard::core::Stage> makeStage(MpiService& mpi) {
  switchboard::core::ConnectorRegistry registry;
  registerMpiStage(registry, std::shared_ptr<MpiService>(&mpi, [](MpiService*) {}));
  rapidjson::Document config;
  config.Parse(R"({"on_possible_match":"create"})");
  switchboard::core::ConfigReader reader(config, "bench", "/stage");
  auto stage =
      (*registry.stage("mpi"))(reader, switchboard::core::ConnectorContext{"bench-stage", "", ""});
  if (!stage) {
    std::fprintf(stderr, "stage: %s\n", stage.error().message.c_str());
    std::exit(1);
  }
  return std::move(*stage);
}

void removeDb(const std::filesystem::path& db) {
  std::error_code ec;
  for (const char* suffix : {"", "-wal", "-shm", "-journal"})
    std::filesystem::remove(db.string() + suffix, ec);
}

}  // namespace

int main(int argc, char** argv) {
  size_t n = 5000, calls = 500, runs = 5, settleEvery = 0;
  std::string configPath = "conf/mpi.json", bundleTemplate;
  std::filesystem::path dir = std::filesystem::temp_directory_path() /
                              ("switchboard-mpi-stage-bench-" + std::to_string(::getpid()));
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--patients")
      n = std::stoul(v);
    else if (k == "--calls")
      calls = std::stoul(v);
    else if (k == "--runs")
      runs = std::stoul(v);
    else if (k == "--config")
      configPath = v;
    else if (k == "--dir")
      dir = v;
    else if (k == "--settle")
      settleEvery = std::stoul(v);
    else if (k == "--stage")
      bundleTemplate = v;
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (!bundleTemplate.empty() && settleEvery == 0) {
    std::fprintf(stderr, "--stage needs --settle N > 0 (the stage's submissions are deferred)\n");
    return 2;
  }
  auto config = MatchConfig::load(configPath);
  if (!config) {
    std::fprintf(stderr, "config: %s\n", config.error().message.c_str());
    return 1;
  }
  std::filesystem::create_directories(dir);
  const auto templ = dir / "template.db";
  const auto work = dir / "run.db";
  removeDb(templ);

  // The existing patients and the incoming ones come from one population, so about a fifth of
  // the incoming are duplicates of stored persons (links and reviews) and the rest are new.
  auto data = bench::generatePatients(n + calls, 7);
  {
    auto mpi = openService(*config, templ.string());
    for (size_t i = 0; i < n; ++i) {
      auto d = mpi->submit(bench::toFhirJson(data.records[i]), "bench");
      if (!d) {
        std::fprintf(stderr, "preload: %s\n", d.error().message.c_str());
        return 1;
      }
    }
  }  // closing the last connection checkpoints the WAL into template.db
  std::vector<std::string> incoming;
  for (size_t i = 0; i < calls; ++i) {
    PersonRecord p = data.records[n + i];
    p.id = "m" + std::to_string(i + 1);
    incoming.push_back(bench::toFhirJson(p));
  }
  const std::vector<std::string> bundles =
      bundleTemplate.empty() ? std::vector<std::string>() : bundlesOf(bundleTemplate, incoming);

  const MpiStore::Durability durability =
      settleEvery > 0 ? MpiStore::Durability::kDeferred : MpiStore::Durability::kFlushed;
  // Called after each call: the engine's settle at the end of every batch of settleEvery.
  auto settleAfter = [&](MpiService& mpi, switchboard::core::Stage* stage, size_t done) {
    if (settleEvery == 0 || (done % settleEvery != 0 && done != calls)) return;
    if (auto s = stage ? stage->settle() : mpi.settle(); !s) {
      std::fprintf(stderr, "settle: %s\n", s.error().message.c_str());
      std::exit(1);
    }
  };
  // Call i: the service's submit, or the stage's process of the Bundle. The decision, or exit.
  std::vector<switchboard::core::StoredMessage> messages(calls);
  for (size_t i = 0; i < calls; ++i) {
    messages[i].id = static_cast<int64_t>(i + 1);  // the stage names the source m<id>
    messages[i].channelId = "bench-stage";
  }
  auto oneCall = [&](MpiService& mpi, switchboard::core::Stage* stage, size_t i, bool replay) {
    if (stage == nullptr) {
      auto d = mpi.submit(incoming[i], "bench-stage", "system", durability);
      if (!d || (replay && !d->updatedSource)) {
        std::fprintf(stderr, "submit: %s\n", d ? "not an update" : d.error().message.c_str());
        std::exit(1);
      }
      return d->result;
    }
    switchboard::core::PipelineMessage pm;
    pm.message = &messages[i];
    pm.payload = bundles[i];
    auto r = stage->process(pm);
    const std::string* decision = switchboard::core::findMetadata(pm.metadata, "mpi_decision");
    if (r.kind != switchboard::core::StageResult::Kind::kContinue || decision == nullptr) {
      std::fprintf(stderr, "stage: %s\n", r.error.message.c_str());
      std::exit(1);
    }
    return parseDecision(*decision).value_or(Decision::kNoMatch);
  };

  std::vector<double> medians, replayMedians, cpu, replayCpu, wall, replayWall;
  std::vector<double> reads, writes, written, replayReads, replayWrites, replayWritten;
  size_t linked = 0, review = 0, created = 0;
  for (size_t r = 0; r < runs; ++r) {
    removeDb(work);
    std::filesystem::copy_file(templ, work);
    auto mpi = openService(*config, work.string());
    auto stage = bundles.empty() ? nullptr : makeStage(*mpi);
    std::vector<double> lat;
    lat.reserve(calls);
    linked = review = created = 0;
    double cpu0 = cpuMicros();
    auto wall0 = Clock::now();
    IoCounts io0 = ioCounts();
    for (size_t i = 0; i < calls; ++i) {
      const auto t = Clock::now();
      const Decision d = oneCall(*mpi, stage.get(), i, false);
      lat.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t).count());
      settleAfter(*mpi, stage.get(), lat.size());
      if (d == Decision::kMatch)
        ++linked;
      else if (d == Decision::kPossibleMatch)
        ++review;
      else
        ++created;
    }
    cpu.push_back((cpuMicros() - cpu0) / double(calls));
    IoCounts io = perCall(io0, ioCounts(), calls);
    reads.push_back(io.syscr);
    writes.push_back(io.syscw);
    written.push_back(io.wchar / 1024);
    wall.push_back(std::chrono::duration<double, std::micro>(Clock::now() - wall0).count() /
                   double(calls));
    medians.push_back(median(lat));
    lat.clear();
    cpu0 = cpuMicros();
    wall0 = Clock::now();
    io0 = ioCounts();
    for (size_t i = 0; i < calls; ++i) {
      const auto t = Clock::now();
      oneCall(*mpi, stage.get(), i, true);
      lat.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t).count());
      settleAfter(*mpi, stage.get(), lat.size());
    }
    replayCpu.push_back((cpuMicros() - cpu0) / double(calls));
    io = perCall(io0, ioCounts(), calls);
    replayReads.push_back(io.syscr);
    replayWrites.push_back(io.syscw);
    replayWritten.push_back(io.wchar / 1024);
    replayWall.push_back(std::chrono::duration<double, std::micro>(Clock::now() - wall0).count() /
                         double(calls));
    replayMedians.push_back(median(lat));
    std::printf(
        "run %zu: new submit median %.0f us (mean %.0f, CPU %.0f us/call), replayed submit "
        "median %.0f us (mean %.0f, CPU %.0f us/call)\n",
        r + 1, medians.back(), wall.back(), cpu.back(), replayMedians.back(), replayWall.back(),
        replayCpu.back());
  }
  std::printf(
      "%s against %zu stored patients (%zu calls x %zu runs, settle every %zu; linked "
      "%zu, review %zu, new %zu): median of run medians %.0f us (mean %.0f, CPU %.0f us/call); "
      "replayed %.0f us (mean %.0f, CPU %.0f us/call)\n",
      bundles.empty() ? "stage submit" : "stage process", n, calls, runs, settleEvery, linked,
      review, created, median(medians), median(wall), median(cpu), median(replayMedians),
      median(replayWall), median(replayCpu));
  std::printf(
      "per call, median of runs: new %.2f read calls, %.2f write calls, %.1f KiB written; "
      "replayed %.2f read calls, %.2f write calls, %.1f KiB written\n",
      median(reads), median(writes), median(written), median(replayReads), median(replayWrites),
      median(replayWritten));
  removeDb(work);
  removeDb(templ);
  std::error_code ec;
  std::filesystem::remove(dir, ec);
  return 0;
}
