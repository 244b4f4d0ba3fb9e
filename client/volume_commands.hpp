// vmstorctl's vol-* commands.
#pragma once

#include <CLI/CLI.hpp>

#include "command_context.hpp"

namespace vmstor::client {

/// @brief Adds vol-list, vol-info, vol-create, vol-delete and vol-resize to `app`.
void add_volume_commands(CLI::App& app, CommandContext& context);

} // namespace vmstor::client
