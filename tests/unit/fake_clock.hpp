// A fake clock for tests of schedules: times are made in a chosen time zone, whatever the machine's.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <fmt/format.h>
#include <string>

namespace vmstor::test {

/// @brief Runs the test in `zone`, then puts the process's zone back.
struct TimeZone {
    std::string before;
    bool had = false;
    explicit TimeZone(const char* zone) {
        if (const char* tz = std::getenv("TZ")) {
            had = true;
            before = tz;
        }
        ::setenv("TZ", zone, 1);
        ::tzset();
    }
    ~TimeZone() {
        if (had)
            ::setenv("TZ", before.c_str(), 1);
        else
            ::unsetenv("TZ");
        ::tzset();
    }
};

/// @brief Seconds since the epoch of a local wall-clock time in the current zone.
inline std::int64_t local(int year, int month, int day, int hour = 3, int minute = 0) {
    std::tm tm{};
    tm.tm_year = year - 1900;
    tm.tm_mon = month - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = minute;
    tm.tm_isdst = -1;
    return std::mktime(&tm);
}

inline std::string date_of(std::int64_t time) {
    std::time_t t = time;
    std::tm tm{};
    ::localtime_r(&t, &tm);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                       tm.tm_hour, tm.tm_min);
}

} // namespace vmstor::test
