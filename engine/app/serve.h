// `switchboard serve [--config FILE]`: runs the engine until SIGTERM or SIGINT.
#pragma once

namespace switchboard::app {
int runServe(int argc, char** argv);
}
