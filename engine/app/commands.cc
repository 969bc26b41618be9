#include "engine/app/commands.h"

#ifdef SWITCHBOARD_HAVE_MPI
#include "engine/mpi/mpi_cli.h"
#endif
#if defined(SWITCHBOARD_HAVE_FHIRPATH) && __has_include("engine/fhirpath/fhirpath_cli.h")
#include "engine/fhirpath/fhirpath_cli.h"
#define SWITCHBOARD_FHIRPATH_CLI 1
#endif
#if defined(SWITCHBOARD_HAVE_FHIR) && __has_include("engine/fhir/fhir_cli.h")
#include "engine/fhir/fhir_cli.h"
#define SWITCHBOARD_FHIR_CLI 1
#endif

namespace switchboard::app {

const std::vector<Command>& extraCommands() {
  static const std::vector<Command> commands = {
#ifdef SWITCHBOARD_FHIRPATH_CLI
      {"fhirpath", "fhirpath EXPR FILE", "evaluate a FHIRPath expression on a FHIR JSON or XML file",
       &fhirpath::runFhirpathCommand},
#endif
#ifdef SWITCHBOARD_FHIR_CLI
      {"validate", "validate FILE [--profile URL]",
       "validate a FHIR JSON or XML resource against fhir-profiles/; prints an OperationOutcome",
       &fhir::runValidateCommand},
#endif
#ifdef SWITCHBOARD_HAVE_MPI
      {"mpi", "mpi link|evaluate|estimate|learn", "master patient index tools (see docs/mpi.md)",
       &mpi::runMpiCommand},
#endif
  };
  return commands;
}

}  // namespace switchboard::app
