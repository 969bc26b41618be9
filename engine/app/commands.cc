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
#if defined(SWITCHBOARD_HAVE_HL7V2) && __has_include("hl7v2/hl7_cli.h")
#include "hl7v2/hl7_cli.h"
#define SWITCHBOARD_HL7_CLI 1
#endif
#if defined(SWITCHBOARD_HAVE_MAPPING) && __has_include("engine/mapping/map_cli.h")
#include "engine/mapping/map_cli.h"
#include "engine/mapping/mapping.h"
#define SWITCHBOARD_MAP_CLI 1
#endif

namespace switchboard::app {

#if defined(SWITCHBOARD_FHIR_CLI) && defined(SWITCHBOARD_MAP_CLI)
int runLintCommand(int argc, char** argv) {
  // What the engine refuses when it loads the mapping (unknown keys, expressions that do not
  // compile, bad directives) is a finding too: lint says what loading would.
  return fhir::runLintCommandWith(argc, argv, [](const std::string& file) {
    std::vector<fhir::LintFinding> out;
    auto loaded = mapping::Mapping::loadFile(file);
    if (loaded) return out;
    std::string message = loaded.error().message;
    // The loader's message starts "<file>: <pointer>: ", which the finding's own prefix says.
    const std::string prefix =
        file + ": " + (loaded.error().location.empty() ? "" : loaded.error().location + ": ");
    if (message.starts_with(prefix)) message.erase(0, prefix.size());
    out.push_back({file, loaded.error().location, "", "does not load: " + message});
    return out;
  });
}
#endif

const std::vector<Command>& extraCommands(){
    static const std::vector<Command> commands = {
#ifdef SWITCHBOARD_FHIRPATH_CLI
        {"fhirpath", "fhirpath EXPR FILE",
         "evaluate a FHIRPath expression on a FHIR JSON or XML file",
         &fhirpath::runFhirpathCommand},
#endif
#ifdef SWITCHBOARD_FHIR_CLI
        {"validate", "validate FILE [--profile URL]",
         "validate a FHIR JSON or XML resource against fhir-profiles/; prints an OperationOutcome",
         &fhir::runValidateCommand},
        {"lint", "lint [MAPPING ...]",
         "check mapping files (default mappings/*.json) against fhir-profiles/",
#ifdef SWITCHBOARD_MAP_CLI
         &runLintCommand},
#else
         &fhir::runLintCommand},
#endif
#endif
#ifdef SWITCHBOARD_MAP_CLI
        {"map", "map MAPPING INPUT [--var name=value ...]",
         "run a mapping file over an input and print the FHIR Bundle", &mapping::runMapCommand},
#endif
#ifdef SWITCHBOARD_HL7_CLI
        {"hl7", "hl7 parse|check FILE [--json|--er7]",
         "parse an HL7 v2 ER7 file (JSON or ER7 out) or check it", &hl7v2::runHl7Command},
#endif
#ifdef SWITCHBOARD_HAVE_MPI
        {"mpi", "mpi link|evaluate|estimate|learn", "master patient index tools (see docs/mpi.md)",
         &mpi::runMpiCommand},
#endif
    };
  return commands;
}

}  // namespace switchboard::app
