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

// `switchboard lint` with both the FHIR and mapping libraries: the profile lint, plus what
// loading each mapping refuses, as findings. Exit codes as fhir::runLintCommand's.
int runLintCommand(int argc, char** argv);

}  // namespace switchboard::app
