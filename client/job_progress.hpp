// A running job's progress as text: the in-place bar for terminals and the plain line for logs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace vmstor::client {

/// @brief What vmstorctl shows of a job: its Job properties (dbus-api.md) that concern progress.
struct JobProgress {
    double progress = 0.0;
    bool progress_valid = false;
    std::uint64_t bytes = 0;
    std::uint64_t bytes_done = 0;
    std::uint64_t rate = 0;            // bytes per second, 0 when unknown
    std::uint64_t expected_end_us = 0; // microseconds since the epoch, 0 when unknown
};

/// @brief "45s", "3m05s", "2h07m": a time left for people.
std::string format_duration(std::uint64_t seconds);

/// @brief "120 MiB/s", as format_size does bytes.
std::string format_rate(std::uint64_t bytes_per_second);

/// @brief Seconds until the job ends: from ExpectedEndTime when the daemon gives one, else from the bytes
/// left at the current rate; nothing when neither is known.
std::optional<std::uint64_t> seconds_left(const JobProgress& job, std::uint64_t now_us);

/// @brief "42%  1.7 GiB/4 GiB  120 MiB/s  20s left": the parts that are known, two spaces apart.
std::string progress_summary(const JobProgress& job, std::uint64_t now_us);

/// @brief The summary behind a bar "[#####.....] " that fills what is left of `width` columns; the bar
/// is dropped when fewer than 10 columns would remain for it, and the line never exceeds `width`.
std::string progress_bar_line(const JobProgress& job, std::uint64_t now_us, std::size_t width);

} // namespace vmstor::client
