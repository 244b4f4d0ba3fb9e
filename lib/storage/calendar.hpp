// systemd calendar expressions (`daily`, `Mon..Fri 02:00`), read by systemd's own parser: schedules are
// validated with it, and the internal timer (where no systemd manager runs vmstord) computes its runs
// with it, so that both agree with what a systemd timer would do.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace vmstor::storage {

/// @brief The normalized form of `expression` (`daily` → `*-*-* 00:00:00`); throws InvalidArgument with
/// systemd's reason when it does not parse. `what` names the key, for the message.
std::string normalize_calendar(const std::string& expression, const std::string& what);

/// @brief The first time after `after` (seconds since the epoch) at which `expression` elapses, in the
/// local time zone unless the expression names one; nullopt when it never does again.
std::optional<std::int64_t> next_elapse(const std::string& expression, std::int64_t after);

} // namespace vmstor::storage
