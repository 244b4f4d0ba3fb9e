// Following a job object (dbus-api.md: long operations return a job) until it ends.
#pragma once

#include <string>

#include <sdbus-c++/IConnection.h>

namespace vmstor::client {

/// @brief True when `path` names a job object rather than the object a call made.
bool is_job_path(const std::string& path);

/// @brief Waits until the job at `path` ends, showing its progress on stderr when that is a terminal.
/// Returns when it completed; throws sdbus::Error with the job's error name and message when it failed
/// or was cancelled, and whatever a call throws when the daemon goes away meanwhile.
void follow_job(sdbus::IConnection& bus, const std::string& path);

} // namespace vmstor::client
