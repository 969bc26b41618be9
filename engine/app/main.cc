// The `switchboard` command line: serve, and the analyst tools (map, validate, lint, fhirpath,
// hl7, mpi) as they land.

#include <cstdio>
#include <cstring>
#include <string>

#include "engine/app/commands.h"
#include "engine/app/serve.h"
#include "engine/core/heap.h"

namespace {

void usage(FILE* out) {
  std::fprintf(out,
               "usage: switchboard COMMAND [ARGS]\n\n"
               "commands:\n"
               "  %-34s  run the engine (default conf/switchboard.json)\n", "serve [--config FILE]");
  for (const auto& c : switchboard::app::extraCommands()) {
    std::fprintf(out, "  %-34s  %s\n", c.usage, c.summary);
  }
  std::fprintf(out, "  %-34s  print the version\n", "version");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "help") == 0) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  std::string command = argv[1];
  if (command == "serve") {
    switchboard::core::keepFreedMemory();
    return switchboard::app::runServe(argc, argv);
  }
  if (command == "version" || command == "--version") {
    std::printf("switchboard 0.1.0\n");
    return 0;
  }
  for (const auto& c : switchboard::app::extraCommands()) {
    if (command == c.name) return c.run(argc - 1, argv + 1);
  }
  std::fprintf(stderr, "switchboard: unknown command %s\n", command.c_str());
  usage(stderr);
  return 2;
}
