// Analyst commands contributed by the libraries (map, validate, lint, fhirpath, mpi, ...).
// Each runs with argv[0] = its own name.
#pragma once

#include <vector>

namespace switchboard::app {

struct Command {
  const char* name;
  const char* usage;
  const char* summary;
  int (*run)(int argc, char** argv);
};

const std::vector<Command>& extraCommands();

}  // namespace switchboard::app
