// `switchboard fhirpath EXPRESSION FILE`: evaluates an expression over a FHIR JSON or XML file.
// Thread-safety: stateless apart from writing to stdout/stderr.
#include "engine/fhirpath/fhirpath_cli.h"

#include <fstream>
#include <iostream>
#include <sstream>

#include "engine/fhirpath/fhirpath.h"

namespace switchboard::fhirpath {

int runFhirpathCommand(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: switchboard fhirpath EXPRESSION FILE\n";
    return 1;
  }
  auto expr = compile(argv[1]);
  if (!expr) {
    std::cerr << "fhirpath: " << expr.error().message << "\n";
    return 2;
  }
  std::ifstream in(argv[2], std::ios::binary);
  if (!in) {
    std::cerr << "fhirpath: cannot read " << argv[2] << "\n";
    return 1;
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    std::cerr << "fhirpath: cannot read " << argv[2] << "\n";
    return 1;
  }
  auto resource = parseResource(text.str());
  if (!resource) {
    std::cerr << "fhirpath: " << argv[2] << ": " << resource.error().message
              << (resource.error().location.empty() ? "" : " (" + resource.error().location + ")")
              << "\n";
    return 1;
  }
  Environment env;
  auto result = evaluate(*expr, *resource, env);
  if (!result) {
    std::cerr << "fhirpath: " << result.error().message << "\n";
    return 2;
  }
  std::cout << toJsonString(*result) << "\n";
  return 0;
}

}  // namespace switchboard::fhirpath
