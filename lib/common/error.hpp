// The project's one error type: a code that maps to a D-Bus error name, and a message for people.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace vmstor {

enum class ErrorCode {
    NotFound,
    AlreadyExists,
    InvalidArgument,
    NotSupported,
    NotAuthorized,
    Busy,
    NoSpace,
    Corrupt,
    Cancelled,
    LimitExceeded,
    LibvirtError,
    Failed,
};

/// @brief The short name of a code, as used after "org.vmstor.Storage1.Error.".
std::string_view error_code_name(ErrorCode code);

/// @brief A failure with a code and a message that says what was asked and why it did not happen.
class Error : public std::runtime_error {
  public:
    Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
    ErrorCode code() const noexcept { return code_; }

  private:
    ErrorCode code_;
};

/// @brief The error for a failed system call: NoSpace for ENOSPC/EDQUOT, NotFound for ENOENT,
/// Busy for EBUSY/EAGAIN, Failed otherwise; the message is `what` followed by strerror(errnum).
Error system_error(int errnum, const std::string& what);

} // namespace vmstor
