#include "job_progress.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "common/size.hpp"

namespace vmstor::client {

namespace {

constexpr std::size_t smallest_bar = 10; // columns of the bar itself, brackets included
constexpr std::uint64_t microseconds_per_second = 1000000;

} // namespace

std::string format_duration(std::uint64_t seconds) {
    if (seconds < 60)
        return fmt::format("{}s", seconds);
    if (seconds < 3600)
        return fmt::format("{}m{:02}s", seconds / 60, seconds % 60);
    return fmt::format("{}h{:02}m", seconds / 3600, seconds % 3600 / 60);
}

std::string format_rate(std::uint64_t bytes_per_second) {
    return format_size(bytes_per_second) + "/s";
}

std::optional<std::uint64_t> seconds_left(const JobProgress& job, std::uint64_t now_us) {
    if (job.expected_end_us != 0) {
        auto left_us = job.expected_end_us > now_us ? job.expected_end_us - now_us : 0;
        // Rounded up, so that "0s" is only shown once the expected end has passed.
        return (left_us + microseconds_per_second - 1) / microseconds_per_second;
    }
    if (job.rate != 0 && job.bytes != 0 && job.bytes >= job.bytes_done)
        return (job.bytes - job.bytes_done + job.rate - 1) / job.rate;
    return std::nullopt;
}

std::string progress_summary(const JobProgress& job, std::uint64_t now_us) {
    std::vector<std::string> parts;
    if (job.progress_valid)
        parts.push_back(fmt::format("{:3.0f}%", std::floor(std::clamp(job.progress, 0.0, 1.0) * 100.0)));
    if (job.bytes != 0)
        parts.push_back(format_size(job.bytes_done) + "/" + format_size(job.bytes));
    else if (job.bytes_done != 0)
        parts.push_back(format_size(job.bytes_done));
    if (job.rate != 0)
        parts.push_back(format_rate(job.rate));
    if (auto left = seconds_left(job, now_us))
        parts.push_back(format_duration(*left) + " left");
    std::string out;
    for (const auto& part : parts)
        out += (out.empty() ? "" : "  ") + part;
    return out.empty() ? "running" : out;
}

std::string progress_bar_line(const JobProgress& job, std::uint64_t now_us, std::size_t width) {
    auto summary = progress_summary(job, now_us);
    if (summary.size() >= width)
        return summary.substr(0, width);
    auto bar_width = width - summary.size() - 1;
    if (bar_width < smallest_bar || !job.progress_valid)
        return summary;
    auto inside = bar_width - 2;
    auto filled = static_cast<std::size_t>(std::floor(std::clamp(job.progress, 0.0, 1.0) * inside));
    return "[" + std::string(filled, '#') + std::string(inside - filled, '.') + "] " + summary;
}

} // namespace vmstor::client
