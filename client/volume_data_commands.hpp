// vmstorctl commands that move or examine a volume's data: clone, convert, wipe, upload, download,
// import, check, measure, map and qemu-img info.
#pragma once

#include <CLI/CLI.hpp>

#include "command_context.hpp"
#include "requests.hpp"

namespace vmstor::client {

void add_volume_data_commands(CLI::App& app, CommandContext& context);

/// @brief The --format/--compress/--compression-type/--cluster-size/--no-sync options of a copy, as typed.
struct CopyArguments {
    CopyRequest request;
    std::string cluster_size;
};

/// @brief Adds the options of a copy (vol-clone, vol-convert, snapshot-clone) to `command`.
void add_copy_options(CLI::App& command, CopyArguments& args);

/// @brief The copy's D-Bus options, with the cluster size parsed.
PropertyMap parsed_copy_options(CopyArguments& args);

} // namespace vmstor::client
