// Runs a helper program (systemd-analyze) and collects what it prints, bounded in time and size.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace vmstor {

struct ProcessResult {
    int exit_status = -1; ///< the exit code; -1 when it was killed or died of a signal
    std::string out;      ///< standard output, at most the limit given
    std::string err;      ///< standard error, at most the limit given
};

/// @brief Runs `argv` (argv[0] looked up in PATH) with no standard input and the caller's environment,
/// and waits for it. Killed after `timeout`. Throws vmstor::Error (Failed) when it cannot be started or
/// was killed for taking too long.
ProcessResult run_process(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                          std::size_t output_limit = 64 * 1024);

} // namespace vmstor
