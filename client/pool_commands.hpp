// vmstorctl's pool-* commands.
#pragma once

#include <CLI/CLI.hpp>

#include "command_context.hpp"

namespace vmstor::client {

/// @brief Adds pool-list, pool-info, pool-create, pool-define-xml, pool-start, pool-stop, pool-refresh,
/// pool-autostart, pool-undefine, pool-delete and pool-capabilities to `app`.
void add_pool_commands(CLI::App& app, CommandContext& context);

} // namespace vmstor::client
