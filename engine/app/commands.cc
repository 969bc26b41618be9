#include "engine/app/commands.h"

namespace switchboard::app {

const std::vector<Command>& extraCommands() {
  static const std::vector<Command> commands = {};
  return commands;
}

}  // namespace switchboard::app
