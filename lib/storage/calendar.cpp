#include "calendar.hpp"

#include "common/error.hpp"
#include "common/process.hpp"

#include <chrono>
#include <ctime>
#include <fmt/format.h>
#include <sstream>

namespace vmstor::storage {

namespace {

constexpr auto analyze_timeout = std::chrono::seconds(10);

/// @brief What `systemd-analyze calendar` says of `expression`; throws InvalidArgument when it refuses it.
ProcessResult analyze(const std::string& expression, const std::string& what,
                      std::optional<std::int64_t> base) {
    if (expression.empty() || expression.size() > 256 || expression.find('\n') != std::string::npos)
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("{}: a calendar expression is one line of at most 256 characters", what));
    std::vector<std::string> argv = {"systemd-analyze", "calendar", "--iterations=1"};
    if (base)
        argv.push_back(fmt::format("--base-time=@{}", *base));
    argv.push_back("--");
    argv.push_back(expression);
    ProcessResult result = run_process(argv, analyze_timeout);
    if (result.exit_status != 0) {
        std::string reason = result.err.substr(0, result.err.find('\n'));
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("{}: '{}' is not a systemd calendar expression ({})", what, expression,
                                reason.empty() ? "systemd-analyze refused it" : reason));
    }
    return result;
}

/// @brief The value after "label:" on the line that has it, trimmed; empty when no line has it.
std::string field(const std::string& text, const std::string& label) {
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        auto at = line.find(label + ": ");
        if (at == std::string::npos || line.find_first_not_of(' ') != at)
            continue;
        return line.substr(at + label.size() + 2);
    }
    return {};
}

} // namespace

std::string normalize_calendar(const std::string& expression, const std::string& what) {
    std::string normalized = field(analyze(expression, what, std::nullopt).out, "Normalized form");
    if (normalized.empty())
        throw Error(ErrorCode::Failed,
                    fmt::format("{}: systemd-analyze did not print a normalized form", what));
    return normalized;
}

std::optional<std::int64_t> next_elapse(const std::string& expression, std::int64_t after) {
    std::string out = analyze(expression, "calendar", after).out;
    std::string when = field(out, "(in UTC)"); // printed when the local zone is not UTC
    if (when.empty())
        when = field(out, "Next elapse");
    if (when == "never")
        return std::nullopt;
    std::tm utc{};
    const char* end = ::strptime(when.c_str(), "%a %Y-%m-%d %H:%M:%S UTC", &utc);
    if (!end || *end != '\0')
        throw Error(ErrorCode::Failed,
                    fmt::format("systemd-analyze printed an elapse time vmstord cannot read: '{}'", when));
    return ::timegm(&utc);
}

} // namespace vmstor::storage
