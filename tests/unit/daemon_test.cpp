#include "common/error.hpp"
#include "error_boundary.hpp"
#include "error_helpers.hpp"
#include "object_paths.hpp"
#include "options.hpp"

#include <catch2/catch.hpp>
#include <string>

using vmstor::Error;
using vmstor::ErrorCode;
using vmstor::daemon::Options;

using vmstor::test::code_of;
using vmstor::test::message_of;

TEST_CASE("options accept known keys of the right type") {
    Options::Map raw{{"format", sdbus::Variant(std::string("raw"))},
                     {"lazy_refcounts", sdbus::Variant(true)},
                     {"cluster_size", sdbus::Variant(std::uint64_t{65536})},
                     {"auth.no_user_interaction", sdbus::Variant(true)}};
    Options options(raw, "test", {{"format", "s"}, {"lazy_refcounts", "b"}, {"cluster_size", "t"}});
    CHECK(options.text("format") == "raw");
    CHECK(options.flag("lazy_refcounts", false));
    CHECK(options.u64("cluster_size") == 65536);
    CHECK_FALSE(options.text("missing").has_value());
    CHECK(options.flag("missing", true));
}

TEST_CASE("options refuse unknown keys and name the known ones") {
    Options::Map raw{{"fromat", sdbus::Variant(std::string("raw"))}};
    auto construct = [&] {
        Options(raw, "CreateVolume options", {{"format", "s"}});
    };
    CHECK(code_of(construct) == ErrorCode::InvalidArgument);
    std::string message = message_of(construct);
    CHECK(message.find("CreateVolume options") != std::string::npos);
    CHECK(message.find("'fromat'") != std::string::npos);
    CHECK(message.find("format") != std::string::npos);
}

TEST_CASE("options refuse values of the wrong D-Bus type") {
    Options::Map raw{{"shrink", sdbus::Variant(std::string("yes"))}};
    auto construct = [&] {
        Options(raw, "Resize options", {{"shrink", "b"}});
    };
    CHECK(code_of(construct) == ErrorCode::InvalidArgument);
    CHECK(message_of(construct).find("must have D-Bus type 'b', not 's'") != std::string::npos);
    Options::Map wrong_auth{{"auth.no_user_interaction", sdbus::Variant(std::uint32_t{1})}};
    CHECK(code_of([&] { Options(wrong_auth, "x", {}); }) == ErrorCode::InvalidArgument);
}

TEST_CASE("options with alternative signatures accept each of them") {
    Options::Map as_path{
        {"backing", sdbus::Variant(sdbus::ObjectPath("/org/vmstor/Storage1/pool/a/volume/b"))}};
    Options::Map as_string{{"backing", sdbus::Variant(std::string("/var/lib/images/base.qcow2"))}};
    Options::Map as_number{{"backing", sdbus::Variant(std::uint64_t{1})}};
    CHECK(Options(as_path, "x", {{"backing", "o|s"}}).signature("backing") == "o");
    CHECK(Options(as_string, "x", {{"backing", "o|s"}}).text("backing") == "/var/lib/images/base.qcow2");
    CHECK(code_of([&] { Options(as_number, "x", {{"backing", "o|s"}}); }) == ErrorCode::InvalidArgument);
}

TEST_CASE("object paths escape names and read them back") {
    using namespace vmstor::daemon;
    CHECK(pool_path("default") == "/org/vmstor/Storage1/pool/default");
    CHECK(volume_path("my-pool", "disk.qcow2") == "/org/vmstor/Storage1/pool/my_2dpool/volume/disk_2eqcow2");
    CHECK(job_path(7) == "/org/vmstor/Storage1/job/7");
    CHECK(pool_name_from_path(pool_path("a b/c")) == "a b/c");
    CHECK(volume_path("2024", "1.raw") == "/org/vmstor/Storage1/pool/_32024/volume/_31_2eraw");
    CHECK(pool_name_from_path("/org/vmstor/Storage1/pool/_32024") == "2024");
    auto [pool, volume] = volume_names_from_path(volume_path("p_1", "v.img"));
    CHECK(pool == "p_1");
    CHECK(volume == "v.img");
    CHECK(code_of([] { pool_name_from_path("/org/vmstor/Storage1/pool/a/volume/b"); }) ==
          ErrorCode::InvalidArgument);
    CHECK(code_of([] { volume_names_from_path("/org/vmstor/Storage1/pool/a"); }) ==
          ErrorCode::InvalidArgument);
    CHECK(code_of([] { volume_names_from_path("/elsewhere/pool/a/volume/b"); }) ==
          ErrorCode::InvalidArgument);
}

TEST_CASE("the error boundary maps every exception to a named D-Bus error") {
    using vmstor::daemon::guarded;
    auto name_of = [](auto&& body) {
        try {
            guarded(body);
        } catch (const sdbus::Error& e) {
            return e.getName();
        }
        return std::string("no error");
    };
    CHECK(name_of([] { throw Error(ErrorCode::NotFound, "x"); }) == "org.vmstor.Storage1.Error.NotFound");
    CHECK(name_of([] { throw Error(ErrorCode::NoSpace, "x"); }) == "org.vmstor.Storage1.Error.NoSpace");
    CHECK(name_of([] { throw std::runtime_error("boom"); }) == "org.vmstor.Storage1.Error.Failed");
    CHECK(name_of([] { throw 42; }) == "org.vmstor.Storage1.Error.Failed");
    CHECK(name_of([] { throw sdbus::Error("org.example.Mine", "m"); }) == "org.example.Mine");
    CHECK(guarded([] { return 5; }) == 5);
    std::string message = "no error";
    try {
        guarded([] { throw Error(ErrorCode::Busy, "volume 'v' is locked by another process"); });
    } catch (const sdbus::Error& e) {
        message = e.getMessage();
    }
    CHECK(message == "volume 'v' is locked by another process");
}
