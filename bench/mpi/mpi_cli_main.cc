// Stand-alone entry point for `switchboard mpi ...` until the app binary wires it in:
// `bench_mpi_cli link|evaluate|estimate|learn ...`. Single-threaded apart from the command's workers.
#include "engine/mpi/mpi_cli.h"

int main(int argc, char** argv) { return switchboard::mpi::runMpiCommand(argc, argv); }
