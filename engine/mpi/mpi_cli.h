// `switchboard mpi ...` subcommands: link, evaluate, estimate, learn. The app wires
// runMpiCommand into its command table; this library has no main().
// Thread-safety: runs one command at a time on the calling thread (plus worker threads it joins).
#pragma once

namespace switchboard::mpi {

// argv[0] is "mpi" (or any name); argv[1] the subcommand. Returns the process exit code:
// 0 success, 1 failure (message on standard error), 2 usage error.
int runMpiCommand(int argc, char** argv);

}  // namespace switchboard::mpi
