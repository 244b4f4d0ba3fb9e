// Calendar expressions as systemd reads them: validation, normalization and the next run, across a
// daylight-saving change.
#include "error_helpers.hpp"
#include "fake_clock.hpp"
#include "storage/calendar.hpp"

#include <catch2/catch.hpp>

using vmstor::ErrorCode;
using vmstor::storage::next_elapse;
using vmstor::storage::normalize_calendar;
using vmstor::test::code_of;
using vmstor::test::date_of;
using vmstor::test::local;
using vmstor::test::TimeZone;

TEST_CASE("calendar expressions are read by systemd's own parser") {
    CHECK(normalize_calendar("daily", "snapshot.calendar") == "*-*-* 00:00:00");
    CHECK(normalize_calendar("Mon..Fri 02:00", "snapshot.calendar") == "Mon..Fri *-*-* 02:00:00");
    CHECK(code_of([] { normalize_calendar("every full moon", "snapshot.calendar"); }) ==
          ErrorCode::InvalidArgument);
    CHECK(code_of([] { normalize_calendar("daily\nweekly", "snapshot.calendar"); }) ==
          ErrorCode::InvalidArgument);
    CHECK(code_of([] { normalize_calendar("", "snapshot.calendar"); }) == ErrorCode::InvalidArgument);

    TimeZone zone("Europe/Berlin");
    // 2026-03-28 12:00 local; the next 02:30 local is on the 30th: the 29th has no 02:30 (clocks go forward).
    const std::int64_t base = local(2026, 3, 28, 12);
    auto next = next_elapse("*-*-* 02:30", base);
    REQUIRE(next);
    CHECK(date_of(*next) == "2026-03-30T02:30"); // systemd skips a time the day does not have
    auto after = next_elapse("*-*-* 02:30", *next);
    REQUIRE(after);
    CHECK(date_of(*after) == "2026-03-31T02:30");
    CHECK(next_elapse("daily", local(2026, 6, 1, 0)) == local(2026, 6, 2, 0)); // strictly after the base
    CHECK(!next_elapse("2020-01-01", base));
}
