// vmstorctl job-list, job-cancel, job-wait, and what every command that starts a job shares.
#pragma once

#include <functional>
#include <string>

#include <CLI/CLI.hpp>

#include "command_context.hpp"
#include "dbus_json.hpp"

namespace vmstor::client {

void add_job_commands(CLI::App& app, CommandContext& context);

/// @brief What every command that starts a job accepts besides its own arguments.
struct JobFlags {
    bool no_wait = false;
    std::string rate_limit; ///< bytes of progress per second as typed ("10M"); empty: no limit

    /// @brief A job method's `options` plus `rate_limit` (t) when --rate-limit was given.
    PropertyMap with_rate_limit(PropertyMap options) const;
};

/// @brief Adds `--no-wait` and `--rate-limit SIZE` to a command that starts a job.
void add_job_flags(CLI::App& command, JobFlags& flags);

/// @brief What a command does with the job its call answered: with --no-wait, prints the job's path and
/// returns false; otherwise follows it to its end (throwing when it fails) and returns true.
bool finish_job(CommandContext& context, const std::string& job, bool no_wait);

class VolumeProxy;

/// @brief Starts a job on the named volume (`start` makes the call; a missing volume is NotFound), then
/// finishes it as finish_job does.
bool run_volume_job(CommandContext& context, const VolumeName& name, bool no_wait,
                    const std::function<sdbus::ObjectPath(VolumeProxy&)>& start);

} // namespace vmstor::client
