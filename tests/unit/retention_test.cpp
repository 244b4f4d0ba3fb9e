// Retention of scheduled points with a fake clock: the policy keeps exactly what it says over a year of
// daily runs, across daylight-saving changes, a clock set back, missed runs and a change of policy.
#include "error_helpers.hpp"
#include "fake_clock.hpp"
#include "storage/retention.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <ctime>
#include <fmt/format.h>
#include <set>
#include <string>
#include <vector>

using vmstor::ErrorCode;
using vmstor::storage::Period;
using vmstor::storage::points_to_prune;
using vmstor::storage::RetainedPoint;
using vmstor::storage::RetentionPolicy;
using vmstor::test::code_of;
using vmstor::test::date_of;
using vmstor::test::local;
using vmstor::test::TimeZone;

namespace {

/// A schedule's record: the points it made, in order.
struct Schedule {
    std::vector<RetainedPoint> points;
    void made_at(std::int64_t time, std::string name = {}) {
        points.push_back({name.empty() ? date_of(time) : name, time, points.size()});
    }
    /// @brief Prunes as the daemon does after a run; returns the names of what stays.
    std::set<std::string> prune(const RetentionPolicy& policy, std::int64_t now) {
        auto gone = points_to_prune(points, policy, now);
        std::erase_if(points, [&](const RetainedPoint& p) {
            return std::find(gone.begin(), gone.end(), p.name) != gone.end();
        });
        return names();
    }
    std::set<std::string> names() const {
        std::set<std::string> all;
        for (const auto& p : points)
            all.insert(p.name);
        return all;
    }
};

RetentionPolicy policy(std::map<std::string, std::uint32_t> keep, std::uint64_t max_age = 0) {
    return RetentionPolicy::parse(keep, max_age);
}

Schedule daily_through_2026() {
    Schedule schedule;
    for (int month = 1; month <= 12; ++month)
        for (int mday = 1; mday <= 31; ++mday) {
            std::int64_t t = local(2026, month, mday);
            if (date_of(t).substr(5, 2) == fmt::format("{:02}", month)) // skips 31 February and such
                schedule.made_at(t);
        }
    return schedule;
}

} // namespace

TEST_CASE("retention keeps exactly what a grandfather-father-son policy says over a year of daily runs") {
    TimeZone zone("Europe/Berlin");
    Schedule schedule = daily_through_2026();
    REQUIRE(schedule.points.size() == 365);
    auto kept = schedule.prune(policy({{"daily", 7}, {"weekly", 4}, {"monthly", 12}, {"yearly", 2}}),
                               local(2026, 12, 31, 4));
    // The last 7 days; the newest of ISO weeks 53, 52, 51, 50 (Thu 31, Sun 27, Sun 20, Sun 13 December);
    // the last day of each month; the newest point of 2026 (the only year).
    std::set<std::string> expected;
    for (int mday = 25; mday <= 31; ++mday)
        expected.insert(fmt::format("2026-12-{:02}T03:00", mday));
    expected.insert("2026-12-20T03:00");
    expected.insert("2026-12-13T03:00");
    const int month_ends[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30};
    for (int month = 1; month <= 11; ++month)
        expected.insert(fmt::format("2026-{:02}-{:02}T03:00", month, month_ends[month - 1]));
    CHECK(kept == expected);
    CHECK(kept.size() == 20);
}

TEST_CASE("retention counts hours of real time and days of the calendar across daylight-saving changes") {
    TimeZone zone("Europe/Berlin");
    // 25 October 2026: clocks go back from 03:00 CEST to 02:00 CET, the local day has 25 hours.
    const std::int64_t midnight = local(2026, 10, 25, 0);
    Schedule autumn;
    for (int hour = 0; hour < 25; ++hour)
        autumn.made_at(midnight + hour * 3600, fmt::format("autumn-{:02}", hour));
    REQUIRE(date_of(autumn.points.back().time) == "2026-10-25T23:00");
    REQUIRE(date_of(autumn.points[2].time) == date_of(autumn.points[3].time)); // 02:00 twice
    Schedule hourly = autumn;
    auto kept = hourly.prune(policy({{"hourly", 24}}), midnight + 25 * 3600);
    CHECK(kept.size() == 24);
    CHECK(!kept.contains("autumn-00")); // the repeated 02:00 is two hours, both kept
    CHECK(kept.contains("autumn-02"));
    CHECK(kept.contains("autumn-03"));
    Schedule daily = autumn;
    CHECK(daily.prune(policy({{"daily", 1}}), midnight + 25 * 3600) == std::set<std::string>{"autumn-24"});

    // 29 March 2026: clocks go forward from 02:00 to 03:00, the local day has 23 hours.
    const std::int64_t spring_midnight = local(2026, 3, 29, 0);
    Schedule spring;
    for (int hour = 0; hour < 23; ++hour)
        spring.made_at(spring_midnight + hour * 3600, fmt::format("spring-{:02}", hour));
    REQUIRE(date_of(spring.points.back().time) == "2026-03-29T23:00");
    Schedule spring_days = spring;
    CHECK(spring_days.prune(policy({{"daily", 2}}), spring_midnight + 23 * 3600) ==
          std::set<std::string>{"spring-22"}); // one local day, one point kept however many hours it had
    CHECK(spring.prune(policy({{"hourly", 23}}), spring_midnight + 23 * 3600).size() == 23);
}

TEST_CASE("retention after the clock was set back keeps the point made last") {
    TimeZone zone("UTC");
    Schedule schedule;
    for (int mday = 1; mday <= 10; ++mday)
        schedule.made_at(local(2026, 1, mday));
    // The clock ran a year ahead for three runs, then was set back.
    for (int mday = 11; mday <= 13; ++mday)
        schedule.made_at(local(2027, 1, mday));
    schedule.made_at(local(2026, 1, 14), "after-the-fix");
    auto kept = schedule.prune(policy({{"daily", 2}}), local(2026, 1, 14, 4));
    // The points dated ahead count as made now (14 January), in their order: the last one made wins the day.
    CHECK(kept == std::set<std::string>{"after-the-fix", "2026-01-10T03:00"});

    Schedule aged;
    for (int mday = 1; mday <= 10; ++mday)
        aged.made_at(local(2026, 1, mday));
    aged.made_at(local(2027, 1, 1), "dated-ahead");
    kept = aged.prune(policy({}, 3 * 86400), local(2026, 1, 10, 4));
    CHECK(kept ==
          std::set<std::string>{"2026-01-08T03:00", "2026-01-09T03:00", "2026-01-10T03:00", "dated-ahead"});
}

TEST_CASE("retention after missed runs keeps the newest periods that have a point") {
    TimeZone zone("UTC");
    Schedule schedule;
    for (int mday : {1, 2, 3, 4, 10, 11}) // the host was down from the 5th to the 9th
        schedule.made_at(local(2026, 1, mday));
    schedule.made_at(local(2026, 1, 11, 9), "caught-up"); // a second run the same day: only the newest counts
    auto kept = schedule.prune(policy({{"daily", 5}}), local(2026, 1, 11, 10));
    CHECK(kept == std::set<std::string>{"2026-01-02T03:00", "2026-01-03T03:00", "2026-01-04T03:00",
                                        "2026-01-10T03:00", "caught-up"});
}

TEST_CASE("retention under a changed policy prunes to the new policy and never brings back a point") {
    TimeZone zone("Europe/Berlin");
    Schedule schedule = daily_through_2026();
    const std::int64_t now = local(2026, 12, 31, 4);
    schedule.prune(policy({{"daily", 7}, {"weekly", 4}, {"monthly", 12}}), now);
    auto kept = schedule.prune(policy({{"daily", 3}, {"monthly", 2}}), now);
    CHECK(kept == std::set<std::string>{"2026-12-29T03:00", "2026-12-30T03:00", "2026-12-31T03:00",
                                        "2026-11-30T03:00"});
    CHECK(schedule.prune(policy({{"daily", 30}}), now) == kept);
    CHECK(schedule.prune(policy({}), now) == kept); // an empty policy keeps everything
}

TEST_CASE("retention policies name known periods only") {
    CHECK(code_of([] { RetentionPolicy::parse({{"fortnightly", 2}}, 0); }) == ErrorCode::InvalidArgument);
    auto parsed = RetentionPolicy::parse({{"daily", 0}, {"weekly", 2}}, 0);
    CHECK(parsed.keep == std::map<Period, std::uint32_t>{{Period::Weekly, 2}});
    CHECK(RetentionPolicy::parse({}, 0).keeps_everything());
    CHECK(points_to_prune({{"a", 1, 0}, {"b", 2, 1}}, RetentionPolicy{}, 3).empty());
}
