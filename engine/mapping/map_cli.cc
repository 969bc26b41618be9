// `switchboard map`. Thread-safety: see map_cli.h.
#include "engine/mapping/map_cli.h"

#include <algorithm>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "engine/core/connector.h"
#include "engine/mapping/mapping.h"

namespace switchboard::mapping {

int runMapCommand(int argc, char** argv) {
  const char* usage =
      "usage: switchboard map MAPPING INPUT [--var name=value ...] [--lines]\n"
      "  --lines  HL7 v2 output: end segments with LF instead of CR (for reading, not sending)\n";
  bool lines = false;
  std::string mappingPath, inputPath;
  fhirpath::Environment env;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--var") {
      if (i + 1 >= argc) {
        std::cerr << "map: --var needs name=value\n" << usage;
        return 2;
      }
      std::string nv = argv[++i];
      auto eq = nv.find('=');
      if (eq == std::string::npos || eq == 0) {
        std::cerr << "map: --var needs name=value, got \"" << nv << "\"\n" << usage;
        return 2;
      }
      std::string name = nv.substr(0, eq), value = nv.substr(eq + 1);
      if (name == "receivedAt") {
        auto t = fhirpath::Temporal::parse(value, fhirpath::TemporalKind::kDateTime);
        if (!t) {
          std::cerr << "map: --var receivedAt needs an instant such as 2026-02-10T14:00:00Z\n";
          return 2;
        }
        env.variables[name] = fhirpath::Collection{fhirpath::Node::temporal(*t)};
      } else {
        env.setVariable(name, value);
      }
    } else if (arg == "--lines") {
      lines = true;
    } else if (arg.starts_with("--")) {
      std::cerr << "map: unknown option " << arg << "\n" << usage;
      return 2;
    } else if (mappingPath.empty()) {
      mappingPath = arg;
    } else if (inputPath.empty()) {
      inputPath = arg;
    } else {
      std::cerr << usage;
      return 2;
    }
  }
  if (mappingPath.empty() || inputPath.empty()) {
    std::cerr << usage;
    return 2;
  }
  std::ifstream in(inputPath, std::ios::binary);
  std::ostringstream text;
  if (in) text << in.rdbuf();
  if (!in || in.bad()) {
    std::cerr << "map: cannot read " << inputPath << "\n";
    return 2;
  }
  auto mapping = Mapping::loadFile(mappingPath);
  if (!mapping) {
    std::cerr << core::operationOutcomeJson(mapping.error()) << "\n";
    return 1;
  }
  auto out = (*mapping)->run(text.str(), env);
  if (!out) {
    std::cerr << core::operationOutcomeJson(out.error()) << "\n";
    return 1;
  }
  if (out->contentType == "application/hl7-v2") {
    // ER7 exactly as a receiver would get it (segments end with CR), unless --lines.
    std::string er7 = out->payload;
    if (lines) std::replace(er7.begin(), er7.end(), '\r', '\n');
    std::cout << er7 << std::flush;
    return 0;
  }
  std::cout << out->payload << "\n";
  return 0;
}

}  // namespace switchboard::mapping
