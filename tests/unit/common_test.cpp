#include "common/error.hpp"
#include "common/names.hpp"
#include "common/process.hpp"
#include "common/size.hpp"
#include "error_helpers.hpp"

#include <catch2/catch.hpp>
#include <cerrno>
#include <string>

using vmstor::Error;
using vmstor::ErrorCode;

using vmstor::test::code_of;
using vmstor::test::message_of;

TEST_CASE("validate_name accepts ordinary names") {
    CHECK_NOTHROW(vmstor::validate_name("volume", "disk-1.qcow2"));
    CHECK_NOTHROW(vmstor::validate_name("pool", std::string(255, 'a')));
    CHECK_NOTHROW(vmstor::validate_name("volume", "with space and ünïcode"));
}

TEST_CASE("validate_name refuses empty, long, slash, dot-dot, NUL and control characters") {
    CHECK(code_of([] { vmstor::validate_name("pool", ""); }) == ErrorCode::InvalidArgument);
    CHECK(code_of([] { vmstor::validate_name("pool", std::string(256, 'a')); }) ==
          ErrorCode::InvalidArgument);
    CHECK(code_of([] { vmstor::validate_name("pool", "a/b"); }) == ErrorCode::InvalidArgument);
    CHECK(code_of([] { vmstor::validate_name("pool", ".."); }) == ErrorCode::InvalidArgument);
    CHECK(code_of([] { vmstor::validate_name("pool", "."); }) == ErrorCode::InvalidArgument);
    CHECK(code_of([] { vmstor::validate_name("pool", std::string("a\0b", 3)); }) ==
          ErrorCode::InvalidArgument);
    CHECK(code_of([] { vmstor::validate_name("pool", "a\nb"); }) == ErrorCode::InvalidArgument);
    CHECK(code_of([] { vmstor::validate_name("pool", "a\x7f"); }) == ErrorCode::InvalidArgument);
}

TEST_CASE("validate_name messages say what kind of name and why") {
    try {
        vmstor::validate_name("volume", "x/y");
        FAIL("accepted a slash");
    } catch (const Error& e) {
        std::string what = e.what();
        CHECK(what.find("volume") != std::string::npos);
        CHECK(what.find("'/'") != std::string::npos);
    }
}

TEST_CASE("path segments are escaped like sd_bus_path_encode and round-trip") {
    CHECK(vmstor::escape_path_segment("") == "_");
    CHECK(vmstor::escape_path_segment("abc123") == "abc123");
    CHECK(vmstor::escape_path_segment("disk-1.qcow2") == "disk_2d1_2eqcow2");
    CHECK(vmstor::escape_path_segment("a_b") == "a_5fb");
    CHECK(vmstor::escape_path_segment("\xff") == "_ff");
    // sd_bus_path_encode also escapes a digit that comes first.
    CHECK(vmstor::escape_path_segment("1abc") == "_31abc");
    CHECK(vmstor::escape_path_segment("2024-01.qcow2") == "_32024_2d01_2eqcow2");
    CHECK(vmstor::unescape_path_segment("_31abc") == "1abc");
    for (std::string name : {"", "a", "disk-1.qcow2", "_", "__", "x y/z", "\x01\xfe", "9", "0_1"})
        CHECK(vmstor::unescape_path_segment(vmstor::escape_path_segment(name)) == name);
    CHECK(code_of([] { vmstor::unescape_path_segment("a_z1"); }) == ErrorCode::InvalidArgument);
    CHECK(code_of([] { vmstor::unescape_path_segment("a_1"); }) == ErrorCode::InvalidArgument);
    CHECK(code_of([] { vmstor::unescape_path_segment("a-b"); }) == ErrorCode::InvalidArgument);
    // Each name has one segment: other spellings that sd_bus_path_decode would read are refused.
    CHECK(code_of([] { vmstor::unescape_path_segment("_61"); }) == ErrorCode::InvalidArgument);
    CHECK(code_of([] { vmstor::unescape_path_segment("1abc"); }) == ErrorCode::InvalidArgument);
    CHECK(code_of([] { vmstor::unescape_path_segment(""); }) == ErrorCode::InvalidArgument);
}

TEST_CASE("parse_size understands plain bytes and binary units") {
    CHECK(vmstor::parse_size("0") == 0);
    CHECK(vmstor::parse_size("4096") == 4096);
    CHECK(vmstor::parse_size("10G") == 10ULL << 30);
    CHECK(vmstor::parse_size("10g") == 10ULL << 30);
    CHECK(vmstor::parse_size("512MiB") == 512ULL << 20);
    CHECK(vmstor::parse_size("1KB") == 1024);
    CHECK(vmstor::parse_size("1.5T") == 3ULL << 39);
    CHECK(vmstor::parse_size("15E") == 15ULL << 60);
}

TEST_CASE("parse_size refuses garbage and overflow") {
    for (const char* bad : {"", "G", "-1", "10X", "10GG", "1.5", "1..5G", "20E", "99999999999999999999"})
        CHECK(code_of([bad] { vmstor::parse_size(bad); }) == ErrorCode::InvalidArgument);
}

TEST_CASE("format_size prints binary units for people") {
    CHECK(vmstor::format_size(0) == "0 B");
    CHECK(vmstor::format_size(1023) == "1023 B");
    CHECK(vmstor::format_size(1024) == "1 KiB");
    CHECK(vmstor::format_size(10ULL << 30) == "10 GiB");
    CHECK(vmstor::format_size(1536ULL << 20) == "1.5 GiB");
}

TEST_CASE("system_error maps errno to the project's codes") {
    CHECK(vmstor::system_error(ENOSPC, "write").code() == ErrorCode::NoSpace);
    CHECK(vmstor::system_error(ENOENT, "open").code() == ErrorCode::NotFound);
    CHECK(vmstor::system_error(EIO, "read").code() == ErrorCode::Failed);
    CHECK(std::string(vmstor::system_error(ENOENT, "open x").what()).starts_with("open x: "));
}

TEST_CASE("run_process collects what a program prints, its exit code, and kills it when it takes too long") {
    using namespace std::chrono_literals;
    auto done = vmstor::run_process({"sh", "-c", "echo out; echo err >&2; exit 3"}, 10s);
    CHECK(done.exit_status == 3);
    CHECK(done.out == "out\n");
    CHECK(done.err == "err\n");
    auto bounded = vmstor::run_process({"sh", "-c", "head -c 100000 /dev/zero"}, 10s, 1000);
    CHECK(bounded.out.size() == 1000);
    CHECK(bounded.exit_status == 0);
    CHECK(vmstor::test::code_of([] {
              vmstor::run_process({"sleep", "30"}, 200ms);
          }) == vmstor::ErrorCode::Failed);
    CHECK(vmstor::test::code_of([] { vmstor::run_process({"no-such-program-vmstor"}, 1s); }) ==
          vmstor::ErrorCode::Failed);
}
