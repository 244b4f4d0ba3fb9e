#include "retention.hpp"

#include "common/error.hpp"

#include <algorithm>
#include <ctime>
#include <fmt/format.h>

namespace vmstor::storage {

namespace {

constexpr Period all_periods[] = {Period::Hourly, Period::Daily, Period::Weekly, Period::Monthly,
                                  Period::Yearly};

/// @brief The period of `period` that `time` falls in, as a number that differs between periods.
std::int64_t period_of(Period period, std::int64_t time) {
    if (period == Period::Hourly)
        return time >= 0 ? time / 3600 : (time - 3599) / 3600;
    std::time_t t = time;
    std::tm local{};
    ::localtime_r(&t, &local);
    const std::int64_t year = local.tm_year + 1900;
    switch (period) {
    case Period::Daily:
        return year * 1000 + local.tm_yday;
    case Period::Weekly: {
        char iso[16] = {};
        std::strftime(iso, sizeof iso, "%G%V", &local); // ISO 8601 week-based year and week
        return std::stoll(iso);
    }
    case Period::Monthly:
        return year * 12 + local.tm_mon;
    default:
        return year;
    }
}

} // namespace

std::string_view period_name(Period period) {
    switch (period) {
    case Period::Hourly:
        return "hourly";
    case Period::Daily:
        return "daily";
    case Period::Weekly:
        return "weekly";
    case Period::Monthly:
        return "monthly";
    case Period::Yearly:
        return "yearly";
    }
    return "yearly";
}

RetentionPolicy RetentionPolicy::parse(const std::map<std::string, std::uint32_t>& keep,
                                       std::uint64_t max_age_seconds) {
    RetentionPolicy policy;
    policy.max_age_seconds = max_age_seconds;
    for (const auto& [name, count] : keep) {
        auto known = std::find_if(std::begin(all_periods), std::end(all_periods),
                                  [&](Period period) { return period_name(period) == name; });
        if (known == std::end(all_periods))
            throw Error(
                ErrorCode::InvalidArgument,
                fmt::format("snapshot.keep: unknown period '{}' (known: hourly, daily, weekly, monthly, "
                            "yearly)",
                            name));
        if (count > 0)
            policy.keep[*known] = count;
    }
    return policy;
}

std::vector<std::string> points_to_prune(std::vector<RetainedPoint> points, const RetentionPolicy& policy,
                                         std::int64_t now) {
    if (policy.keeps_everything())
        return {};
    // A point counts as made no later than `now`, nor than any point the schedule made after it: points
    // dated ahead by a clock that was set back later rank by the order they were made in.
    std::sort(points.begin(), points.end(),
              [](const RetainedPoint& a, const RetainedPoint& b) { return a.sequence < b.sequence; });
    std::int64_t no_later_than = now;
    for (auto point = points.rbegin(); point != points.rend(); ++point)
        no_later_than = point->time = std::min(point->time, no_later_than);
    std::sort(points.begin(), points.end(), [](const RetainedPoint& a, const RetainedPoint& b) {
        return a.time != b.time ? a.time > b.time : a.sequence > b.sequence; // newest first
    });
    std::vector<bool> kept(points.size(), policy.keep.empty());
    for (const auto& [period, count] : policy.keep) {
        std::uint32_t used = 0;
        std::int64_t last = 0;
        for (std::size_t i = 0; i < points.size() && used < count; ++i) {
            std::int64_t current = period_of(period, points[i].time);
            if (used > 0 && current == last)
                continue; // an older point of a period that already kept its newest
            kept[i] = true;
            last = current;
            ++used;
        }
    }
    std::vector<std::string> pruned;
    for (std::size_t i = points.size(); i-- > 0;) {
        const bool too_old = policy.max_age_seconds > 0 &&
                             static_cast<std::uint64_t>(now - points[i].time) > policy.max_age_seconds;
        if (!kept[i] || too_old)
            pruned.push_back(points[i].name);
    }
    return pruned;
}

} // namespace vmstor::storage
