// The `validate` command. Thread-safety: stateless apart from writing to stdout/stderr.
#include "engine/fhir/fhir_cli.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string_view>
#include <vector>

#include "engine/fhir/lint.h"
#include "engine/fhir/validator.h"

namespace switchboard::fhir {

namespace {

bool hasDefinitions(const std::filesystem::path& dir) {
  std::error_code ec;
  return std::filesystem::is_regular_file(dir / "StructureDefinition-Resource.json", ec);
}

}  // namespace

std::string findProfilesDirectory(const char* argv0) {
  namespace fs = std::filesystem;
  if (const char* env = std::getenv("SWITCHBOARD_FHIR_PROFILES"); env && *env) return env;
  std::vector<fs::path> candidates{"fhir-profiles"};
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec && argv0) exe = fs::absolute(argv0, ec);
  if (!exe.empty()) {
    fs::path dir = exe.parent_path();
    candidates.push_back(dir / ".." / ".." / "fhir-profiles");
    candidates.push_back(dir / ".." / "share" / "switchboard" / "fhir-profiles");
  }
#ifdef SWITCHBOARD_FHIR_PROFILES_DIR
  candidates.emplace_back(SWITCHBOARD_FHIR_PROFILES_DIR);
#endif
  for (const auto& c : candidates)
    if (hasDefinitions(c)) return c.lexically_normal().string();
  return "fhir-profiles";
}

int runValidateCommand(int argc, char** argv) {
  const char* usage = "usage: switchboard validate FILE [--profile URL]...\n";
  std::string file;
  ValidationOptions options;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--profile" && i + 1 < argc) {
      options.profiles.emplace_back(argv[++i]);
    } else if (arg.starts_with("--profile=")) {
      options.profiles.emplace_back(arg.substr(10));
    } else if (arg.starts_with("-") && arg != "-") {
      std::cerr << usage;
      return 2;
    } else if (file.empty()) {
      file = arg;
    } else {
      std::cerr << usage;
      return 2;
    }
  }
  if (file.empty()) {
    std::cerr << usage;
    return 2;
  }
  std::ostringstream text;
  if (file == "-") {
    text << std::cin.rdbuf();
  } else {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      std::cerr << "validate: cannot read " << file << "\n";
      return 2;
    }
    text << in.rdbuf();
    if (in.bad()) {
      std::cerr << "validate: cannot read " << file << "\n";
      return 2;
    }
  }
  std::string dir = findProfilesDirectory(argc > 0 ? argv[0] : nullptr);
  auto validator = Validator::fromDirectory(dir);
  if (!validator) {
    std::cerr << "validate: " << validator.error().message << "\n";
    return 2;
  }
  for (const auto& p : options.profiles) {
    if (!validator->definitions().byUrl(p)) {
      std::cerr << "validate: unknown profile " << p << " (not in " << dir << ")\n";
      return 2;
    }
  }
  auto issues = validator->validateText(text.str(), options);
  std::cout << toOperationOutcomeJson(issues, true) << "\n";
  return hasErrors(issues) ? 1 : 0;
}

int runLintCommand(int argc, char** argv) { return runLintCommandWith(argc, argv, {}); }

int runLintCommandWith(
    int argc, char** argv,
    const std::function<std::vector<LintFinding>(const std::string& file)>& extra) {
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg.starts_with("-")) {
      std::cerr << "usage: switchboard lint [MAPPING ...]\n";
      return 2;
    }
    files.emplace_back(arg);
  }
  if (files.empty()) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("mappings", ec)) {
      if (e.is_regular_file() && e.path().extension() == ".json")
        files.push_back(e.path().string());
    }
    std::sort(files.begin(), files.end());
    if (files.empty()) {
      std::cerr << "lint: no mapping files given and none in mappings/\n";
      return 2;
    }
  }
  std::string dir = findProfilesDirectory(argc > 0 ? argv[0] : nullptr);
  auto defs = Definitions::load(dir);
  if (!defs) {
    std::cerr << "lint: " << defs.error().message << "\n";
    return 2;
  }
  std::size_t count = 0;
  for (const auto& file : files) {
    std::error_code ec;
    if (!fs::is_regular_file(file, ec)) {
      std::cerr << "lint: cannot read " << file << "\n";
      return 2;
    }
    std::vector<LintFinding> findings = lintMappingFile(**defs, file);
    if (extra) {
      for (auto& f : extra(file)) findings.push_back(std::move(f));
    }
    for (const auto& f : findings) {
      std::cout << formatFinding(f) << "\n";
      ++count;
    }
  }
  std::cerr << "lint: " << files.size() << " file(s), " << count << " finding(s)\n";
  return count == 0 ? 0 : 1;
}

}  // namespace switchboard::fhir
