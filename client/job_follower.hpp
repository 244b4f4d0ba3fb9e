// Following a job object (dbus-api.md: long operations return a job) until it ends.
#pragma once

#include <exception>
#include <string>

#include <sdbus-c++/IConnection.h>

namespace vmstor::client {

/// @brief The exit status after Ctrl-C, as shells give it (128 + SIGINT).
inline constexpr int exit_interrupted = 130;

/// @brief Thrown when Ctrl-C ended the wait for a job; main() prints the error line and exits 130.
class Interrupted : public std::exception {
  public:
    /// @param error_name "Cancelled" when the job was cancelled, "Interrupted" when only the wait ended.
    Interrupted(std::string error_name, std::string message)
        : error_name_(std::move(error_name)), message_(std::move(message)) {}
    const char* what() const noexcept override { return message_.c_str(); }
    const std::string& error_name() const { return error_name_; }

  private:
    std::string error_name_;
    std::string message_;
};

/// @brief What Ctrl-C does while following: cancel the job (for the command that started it), or only
/// stop waiting (job-wait, whose job may be someone else's).
enum class OnInterrupt { CancelJob, StopWaiting };

/// @brief True when `path` names a job object rather than the object a call made.
bool is_job_path(const std::string& path);

/// @brief Waits until the job at `path` ends, through its Completed signal and a State re-read every 2 s.
/// Shows its progress on stderr: a bar redrawn in place on a terminal, else a plain line every few
/// seconds and one at the end. Returns when it completed; throws sdbus::Error with the job's error name
/// and message when it failed or was cancelled, Interrupted after Ctrl-C, and whatever a call throws
/// when the daemon goes away meanwhile.
void follow_job(sdbus::IConnection& bus, const std::string& path,
                OnInterrupt on_interrupt = OnInterrupt::CancelJob);

} // namespace vmstor::client
