// `switchboard mpi` subcommands. Thread-safety: see mpi_cli.h.
#include "engine/mpi/mpi_cli.h"

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <string>

#include "engine/mpi/estimate.h"
#include "engine/mpi/febrl.h"
#include "engine/mpi/link.h"
#include "engine/mpi/mpi_store.h"
#include "engine/mpi/reviewer_labels.h"

namespace switchboard::mpi {
namespace {

constexpr const char* kUsage =
    "usage: switchboard mpi <command> [options]\n"
    "  link --input patients.ndjson --output links.ndjson [--config conf/mpi.json] [--threads N]\n"
    "  evaluate --febrl DIR [--config conf/mpi.json]\n"
    "  estimate (--input patients.ndjson | --febrl FILE.csv ...) [--config conf/mpi.json]\n"
    "           [--output new-mpi.json] [--iterations N]\n"
    "  learn [--store URL] [--labels decisions.ndjson] [--config conf/mpi.json] [--output "
    "new-mpi.json]\n"
    "        [--learn-u]\n"
    "        re-estimates m from reviewers' merges (Bayesian, learning.priorStrength pseudo-\n"
    "        observations); --learn-u also updates u from not-duplicate decisions. Decisions come\n"
    "        from the MPI store (default sqlite:$SWITCHBOARD_DATA_DIR/mpi.db, data dir default "
    "var;\n"
    "        only read) and/or a file (each line: {\"a\": Patient, \"b\": Patient, \"match\": "
    "bool})\n"
    "The config defaults to conf/mpi.json in the working directory, else built-in defaults.\n";

struct Args {
  std::map<std::string, std::vector<std::string>> options;
  std::string error;
  std::string one(const std::string& k) const {
    auto it = options.find(k);
    return it == options.end() || it->second.empty() ? std::string() : it->second.back();
  }
};

Args parse(int argc, char** argv, int first, const std::vector<std::string>& allowed) {
  Args a;
  for (int i = first; i < argc; ++i) {
    std::string k = argv[i];
    if (k.rfind("--", 0) != 0) {
      a.error = "unexpected argument " + k;
      return a;
    }
    k = k.substr(2);
    if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) {
      a.error = "unknown option --" + k;
      return a;
    }
    if (k == "learn-u") {  // the one flag without a value
      a.options[k].push_back("1");
      continue;
    }
    if (i + 1 >= argc) {
      a.error = "option --" + k + " needs a value";
      return a;
    }
    a.options[k].push_back(argv[++i]);
  }
  return a;
}

Result<MatchConfig> loadConfig(const Args& a) {
  std::string path = a.one("config");
  if (path.empty()) {
    if (std::filesystem::exists("conf/mpi.json"))
      path = "conf/mpi.json";
    else
      return MatchConfig::defaults();
  }
  return MatchConfig::load(path);
}

int failWith(const Error& e) {
  std::cerr << "mpi: " << e.message << (e.location.empty() ? "" : " (" + e.location + ")") << "\n";
  return 1;
}

unsigned threadsOf(const Args& a) {
  std::string t = a.one("threads");
  return t.empty() ? 0u : static_cast<unsigned>(std::strtoul(t.c_str(), nullptr, 10));
}

int runLink(const Args& a) {
  std::string input = a.one("input"), output = a.one("output");
  if (input.empty() || output.empty()) {
    std::cerr << kUsage;
    return 2;
  }
  auto config = loadConfig(a);
  if (!config) return failWith(config.error());
  std::ifstream in(input);
  if (!in) return failWith(Error(ErrorCode::kNotFound, "cannot read input", input));
  std::string tmp = output + ".tmp";
  std::ofstream out(tmp, std::ios::trunc);
  if (!out) return failWith(Error(ErrorCode::kException, "cannot write output", output));
  LinkOptions opts;
  opts.threads = threadsOf(a);
  auto st = linkNdjson(in, out, *config, opts);
  out.close();
  if (!st) {
    std::filesystem::remove(tmp);
    return failWith(st.error());
  }
  std::filesystem::rename(tmp, output);
  std::cerr << "mpi link: " << st->patients << " patients, " << st->enterprises
            << " enterprise records, " << st->autoLinks << " automatic links, " << st->reviewPairs
            << " pairs to review, " << st->comparisons << " comparisons, " << st->seconds << " s\n";
  return 0;
}

int runEvaluate(const Args& a) {
  std::string dir = a.one("febrl");
  if (dir.empty()) {
    std::cerr << kUsage;
    return 2;
  }
  auto config = loadConfig(a);
  if (!config) return failWith(config.error());
  auto r = evaluateFebrlDir(dir, *config);
  if (!r) return failWith(r.error());
  for (const auto& e : *r) std::cout << formatEvaluation(e);
  return 0;
}

int runEstimate(const Args& a) {
  auto config = loadConfig(a);
  if (!config) return failWith(config.error());
  MpiIndex index(*config);
  if (auto it = a.options.find("febrl"); it != a.options.end()) {
    for (const auto& f : it->second) {
      auto recs = readFebrlCsv(f);
      if (!recs) return failWith(recs.error());
      for (const auto& r : *recs) index.add(index.normalize(r));
    }
  }
  if (std::string input = a.one("input"); !input.empty()) {
    std::ifstream in(input);
    if (!in) return failWith(Error(ErrorCode::kNotFound, "cannot read input", input));
    std::string line;
    size_t n = 0;
    while (std::getline(in, line)) {
      ++n;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      auto p = personFromFhirPatientJson(line);
      if (!p)
        return failWith(Error(p.error().code, p.error().message, "line " + std::to_string(n)));
      index.add(index.normalize(*p));
    }
  }
  if (index.sizeUnlocked() == 0) {
    std::cerr << kUsage;
    return 2;
  }
  std::string iters = a.one("iterations");
  LinkOptions opts;
  opts.threads = threadsOf(a);
  EmResult em = estimateFromIndex(index, opts, iters.empty() ? 100 : std::atoi(iters.c_str()));
  std::cerr << "mpi estimate: " << em.pairs << " blocked pairs, " << em.iterations << " iterations"
            << (em.converged ? " (converged)" : "") << ", lambda " << em.config.lambda << "\n";
  std::string json = em.config.toJson();
  if (std::string output = a.one("output"); !output.empty()) {
    std::ofstream out(output, std::ios::trunc);
    out << json;
    if (!out) return failWith(Error(ErrorCode::kException, "cannot write output", output));
  } else {
    std::cout << json;
  }
  return 0;
}

int runLearn(const Args& a) {
  std::string labels = a.one("labels"), storeUrl = a.one("store");
  auto config = loadConfig(a);
  if (!config) return failWith(config.error());
  if (labels.empty() && storeUrl.empty()) {
    const char* dir = std::getenv("SWITCHBOARD_DATA_DIR");
    const std::string db = std::string(dir && *dir ? dir : "var") + "/mpi.db";
    if (!std::filesystem::exists(db)) {
      return failWith(
          Error(ErrorCode::kNotFound, "no MPI store (give --store URL or --labels FILE)", db));
    }
    storeUrl = "sqlite:" + db;
  }
  std::vector<LabelledPair> pairs;
  if (!storeUrl.empty()) {
    auto store = MpiStore::open(storeUrl);
    if (!store) return failWith(store.error());
    auto fromStore = labelsFromStore(**store, *config);
    if (!fromStore) return failWith(fromStore.error());
    std::cerr << "mpi learn: " << fromStore->merges << " merged and " << fromStore->notDuplicates
              << " not-duplicate review decisions"
              << (fromStore->skipped
                      ? ", " + std::to_string(fromStore->skipped) + " skipped (source missing)"
                      : "")
              << "\n";
    pairs = std::move(fromStore->pairs);
  }
  if (!labels.empty()) {
    std::ifstream in(labels);
    if (!in) return failWith(Error(ErrorCode::kNotFound, "cannot read labels", labels));
    std::string line;
    size_t n = 0, fromFile = 0;
    while (std::getline(in, line)) {
      ++n;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      rapidjson::Document d;
      d.Parse(line.c_str());
      std::string where = labels + ":" + std::to_string(n);
      if (d.HasParseError() || !d.IsObject() || !d.HasMember("a") || !d.HasMember("b") ||
          !d.HasMember("match") || !d["match"].IsBool()) {
        return failWith(Error(ErrorCode::kStructure,
                              "expected {\"a\": Patient, \"b\": Patient, \"match\": bool}", where));
      }
      auto pa = personFromFhirPatient(d["a"]);
      auto pb = personFromFhirPatient(d["b"]);
      if (!pa) return failWith(Error(pa.error().code, pa.error().message, where + " a"));
      if (!pb) return failWith(Error(pb.error().code, pb.error().message, where + " b"));
      NormalizedRecord na = normalizeRecord(*pa, *config), nb = normalizeRecord(*pb, *config);
      pairs.push_back({compareRecords(viewOf(na), viewOf(nb), *config), d["match"].GetBool()});
      ++fromFile;
    }
    std::cerr << "mpi learn: " << fromFile << " labelled pairs from " << labels << "\n";
  }
  const bool learnU = !a.one("learn-u").empty();
  MatchConfig learned = learnFromDecisions(*config, pairs, learnU);
  std::cerr << (learnU ? "mpi learn: m from merges, u from not-duplicates\n"
                       : "mpi learn: m from merges (not-duplicates leave u as it is; --learn-u)\n")
            << describeWeightChanges(*config, learned);
  std::string json = learned.toJson();
  if (std::string output = a.one("output"); !output.empty()) {
    std::ofstream out(output, std::ios::trunc);
    out << json;
    if (!out) return failWith(Error(ErrorCode::kException, "cannot write output", output));
  } else {
    std::cout << json;
  }
  return 0;
}

}  // namespace

int runMpiCommand(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << kUsage;
    return 2;
  }
  std::string cmd = argv[1];
  if (cmd == "help" || cmd == "--help" || cmd == "-h") {
    std::cout << kUsage;
    return 0;
  }
  std::vector<std::string> allowed;
  if (cmd == "link")
    allowed = {"input", "output", "config", "threads"};
  else if (cmd == "evaluate")
    allowed = {"febrl", "config"};
  else if (cmd == "estimate")
    allowed = {"input", "febrl", "config", "output", "iterations", "threads"};
  else if (cmd == "learn")
    allowed = {"labels", "store", "config", "output", "learn-u"};
  else {
    std::cerr << "mpi: unknown command " << cmd << "\n" << kUsage;
    return 2;
  }
  Args a = parse(argc, argv, 2, allowed);
  if (!a.error.empty()) {
    std::cerr << "mpi: " << a.error << "\n" << kUsage;
    return 2;
  }
  if (cmd == "link") return runLink(a);
  if (cmd == "evaluate") return runEvaluate(a);
  if (cmd == "estimate") return runEstimate(a);
  return runLearn(a);
}

}  // namespace switchboard::mpi
