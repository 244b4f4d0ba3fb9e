// vmstorctl commands for internal snapshots and backing chains: snapshot-*, vol-overlay, vol-commit,
// vol-rebase.
#pragma once

#include <CLI/CLI.hpp>

#include "command_context.hpp"

namespace vmstor::client {

void add_snapshot_commands(CLI::App& app, CommandContext& context);

} // namespace vmstor::client
