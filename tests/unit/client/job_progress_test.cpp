#include <catch2/catch.hpp>

#include "job_progress.hpp"

using namespace vmstor::client;

namespace {

constexpr std::uint64_t second = 1000000;
constexpr std::uint64_t now = 1'700'000'000 * second;
constexpr std::uint64_t mib = 1024 * 1024;

JobProgress copy_at_25_percent() {
    JobProgress job;
    job.progress = 0.25;
    job.progress_valid = true;
    job.bytes = 400 * mib;
    job.bytes_done = 100 * mib;
    job.rate = 10 * mib;
    return job;
}

} // namespace

TEST_CASE("time left reads as seconds, minutes and seconds, or hours and minutes") {
    CHECK(format_duration(0) == "0s");
    CHECK(format_duration(59) == "59s");
    CHECK(format_duration(60) == "1m00s");
    CHECK(format_duration(185) == "3m05s");
    CHECK(format_duration(3599) == "59m59s");
    CHECK(format_duration(3600) == "1h00m");
    CHECK(format_duration(7620) == "2h07m");
}

TEST_CASE("the rate is a size per second") {
    CHECK(format_rate(512) == "512 B/s");
    CHECK(format_rate(120 * mib) == "120 MiB/s");
}

TEST_CASE("time left comes from ExpectedEndTime when the daemon gives one, rounded up") {
    auto job = copy_at_25_percent();
    job.expected_end_us = now + 12 * second + 1;
    CHECK(seconds_left(job, now) == 13);
    job.expected_end_us = now - second; // already past: zero, not a wrapped huge number
    CHECK(seconds_left(job, now) == 0);
}

TEST_CASE("without ExpectedEndTime, time left is the bytes left at the current rate") {
    auto job = copy_at_25_percent();
    CHECK(seconds_left(job, now) == 30);
    job.rate = 0;
    CHECK_FALSE(seconds_left(job, now).has_value());
    job.rate = 10 * mib;
    job.bytes = 0;
    CHECK_FALSE(seconds_left(job, now).has_value());
}

TEST_CASE("the summary shows percent, bytes done of total, rate and time left") {
    CHECK(progress_summary(copy_at_25_percent(), now) == " 25%  100 MiB/400 MiB  10 MiB/s  30s left");
}

TEST_CASE("the summary leaves out what is not known") {
    JobProgress job;
    CHECK(progress_summary(job, now) == "running");
    job.bytes_done = 3 * mib;
    CHECK(progress_summary(job, now) == "3 MiB");
    job.progress = 0.5; // not valid: not shown
    CHECK(progress_summary(job, now) == "3 MiB");
}

TEST_CASE("the percentage is rounded down and kept within 0..100") {
    JobProgress job;
    job.progress_valid = true;
    job.progress = 0.999;
    CHECK(progress_summary(job, now) == " 99%");
    job.progress = 1.5;
    CHECK(progress_summary(job, now) == "100%");
    job.progress = -0.1;
    CHECK(progress_summary(job, now) == "  0%");
}

TEST_CASE("the bar fills the width left by the summary, in proportion to the progress") {
    auto job = copy_at_25_percent();
    auto summary = progress_summary(job, now);
    auto line = progress_bar_line(job, now, summary.size() + 1 + 22);
    CHECK(line.size() == summary.size() + 1 + 22);
    CHECK(line == "[#####...............] " + summary);
    job.progress = 1.0;
    CHECK(progress_bar_line(job, now, summary.size() + 1 + 22).starts_with("[####################] "));
}

TEST_CASE("a narrow terminal drops the bar, then cuts the summary, never exceeding the width") {
    auto job = copy_at_25_percent();
    auto summary = progress_summary(job, now);
    CHECK(progress_bar_line(job, now, summary.size() + 5) == summary);
    CHECK(progress_bar_line(job, now, 10) == summary.substr(0, 10));
    for (std::size_t width = 1; width < 120; ++width)
        CHECK(progress_bar_line(job, now, width).size() <= width);
}

TEST_CASE("without a valid progress there is no bar") {
    auto job = copy_at_25_percent();
    job.progress_valid = false;
    CHECK(progress_bar_line(job, now, 200) == progress_summary(job, now));
}
