// The `switchboard` command line: serve, and the analyst tools (map, validate, lint, fhirpath,
// hl7, mpi) as they land.
#include <malloc.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "engine/app/commands.h"
#include "engine/app/serve.h"

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
    // The engine frees and reallocates large buffers (batches, Bundles, SQLite pages) at a high
    // rate; glibc's default of returning them to the kernel (munmap, heap trim) makes the kernel
    // shoot down TLB entries on every core each time. Keep them in the process instead: memory
    // stays bounded by the working set (backpressure bounds that), and no page is returned.
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
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
