// Which points (scheduled snapshots, backups) a schedule keeps: grandfather-father-son counts per calendar
// period, read as restic's `forget --keep-hourly/daily/weekly/monthly/yearly`, and an age limit.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace vmstor::storage {

enum class Period { Hourly, Daily, Weekly, Monthly, Yearly };

/// @brief "hourly", "daily"...: the key of a period in `snapshot.keep`.
std::string_view period_name(Period period);

struct RetentionPolicy {
    /// For each period, how many of its most recent periods that hold a point keep their newest point.
    std::map<Period, std::uint32_t> keep;
    /// Points older than this many seconds are pruned, whatever `keep` says; 0: no age limit.
    std::uint64_t max_age_seconds = 0;

    /// @brief True when the policy prunes nothing (no counts, no age limit).
    bool keeps_everything() const { return keep.empty() && max_age_seconds == 0; }
    /// @brief A policy from the schedule keys `snapshot.keep` (period name → count) and `snapshot.max_age`;
    /// throws InvalidArgument naming an unknown period.
    static RetentionPolicy parse(const std::map<std::string, std::uint32_t>& keep,
                                 std::uint64_t max_age_seconds);

    bool operator==(const RetentionPolicy&) const = default;
};

/// A point a schedule made.
struct RetainedPoint {
    std::string name;
    std::int64_t time = 0;      ///< when it was made, seconds since the epoch
    std::uint64_t sequence = 0; ///< the order the schedule made its points in (its record counts them)
};

/// @brief The names of the points `policy` does not keep at `now`, oldest first. Periods are calendar
/// periods in the local time zone (days, ISO weeks, months, years), except hours, which are hours of real
/// time so that none repeats or vanishes when the clocks change. A point counts as made no later than `now`
/// nor than any point made after it (by `sequence`): after the clock was set back, the point made last is
/// still the newest.
std::vector<std::string> points_to_prune(std::vector<RetainedPoint> points, const RetentionPolicy& policy,
                                         std::int64_t now);

} // namespace vmstor::storage
