// Internal snapshots (create, apply, delete), each checked with qemu-img check, qemu-img snapshot -l and
// qemu-io reads, and crossed with snapshots qemu-img makes and applies.
#include "common/error.hpp"
#include "helpers.hpp"
#include "qcow2/image.hpp"
#include "qcow2/operations.hpp"

#include <algorithm>
#include <catch2/catch.hpp>

using namespace qcow2_test;
namespace q = vmstor::qcow2;

namespace {

const char* const image_kinds[] = {"compat=1.1", "compat=0.10", "compat=1.1,extended_l2=on",
                                   "compat=1.1,cluster_size=4k,refcount_bits=8"};

void make_image(const std::string& path, const std::string& options, const std::string& size = "64M") {
    REQUIRE(run(qemu_img() + " create -q -f qcow2 -o " + options + " " + path + " " + size).status == 0);
}

void qemu_io_ok(const std::string& path, const std::string& commands) {
    auto r = run(qemu_io() + " " + commands + " " + path);
    INFO(r.output);
    REQUIRE(r.status == 0);
    // qemu-io reports a pattern mismatch on its output but exits 0.
    REQUIRE(r.output.find("Pattern verification failed") == std::string::npos);
    REQUIRE(r.output.find("failed") == std::string::npos);
}

void require_clean(const std::string& path) {
    auto r = run(qemu_img() + " check " + path);
    INFO(r.output);
    REQUIRE(r.status == 0);
    REQUIRE(r.output.find("No errors were found on the image.") != std::string::npos);
    REQUIRE(r.output.find("leaked") == std::string::npos);
}

std::string qemu_list(const std::string& path) {
    auto r = run(qemu_img() + " snapshot -l " + path);
    REQUIRE(r.status == 0);
    return r.output;
}

std::unique_ptr<q::Image> open_writable(const std::string& path) {
    q::OpenOptions options;
    options.writable = true;
    return q::Image::open(path, options);
}

} // namespace

TEST_CASE("our snapshot keeps the data written before it, qemu-img sees it and the image stays clean") {
    Scratch s;
    for (const char* kind : image_kinds) {
        INFO(kind);
        const std::string path = s.path("a.qcow2");
        make_image(path, kind);
        qemu_io_ok(path, "-c 'write -P 0x11 0 1M' -c 'write -P 0x22 5M 100k' -c 'write -P 0x44 40M 64k'");
        {
            auto image = open_writable(path);
            q::create_snapshot(*image, "before");
        }
        require_clean(path);
        CHECK(qemu_list(path).find(" before ") != std::string::npos);

        qemu_io_ok(path, "-c 'write -P 0x33 0 2M' -c 'write -z 40M 64k' -c 'write -P 0x55 60M 4k'");
        require_clean(path);
        {
            auto image = open_writable(path);
            q::apply_snapshot(*image, "before");
        }
        require_clean(path);
        qemu_io_ok(path, "-c 'read -P 0x11 0 1M' -c 'read -P 0 1M 1M' -c 'read -P 0x22 5M 100k' "
                         "-c 'read -P 0x44 40M 64k' -c 'read -P 0 60M 4k'");

        // Writes after applying leave the snapshot alone: apply it again and see the old data.
        qemu_io_ok(path, "-c 'write -P 0x66 0 4k' -c 'write -P 0x77 5M 4k'");
        {
            auto image = open_writable(path);
            q::apply_snapshot(*image, "1"); // by id
        }
        require_clean(path);
        qemu_io_ok(path, "-c 'read -P 0x11 0 1M' -c 'read -P 0x22 5M 100k'");

        {
            auto image = open_writable(path);
            q::delete_snapshot(*image, "before");
            CHECK(q::list_snapshots(*image).empty());
        }
        require_clean(path);
        CHECK(qemu_list(path).empty());
        qemu_io_ok(path, "-c 'read -P 0x11 0 1M' -c 'read -P 0x22 5M 100k'");
    }
}

TEST_CASE("snapshots cross between qemu-img and us") {
    Scratch s;
    for (const char* kind : image_kinds) {
        INFO(kind);
        const std::string path = s.path("a.qcow2");
        make_image(path, kind);
        qemu_io_ok(path, "-c 'write -P 0x11 0 256k'");
        REQUIRE(run(qemu_img() + " snapshot -c theirs " + path).status == 0);
        qemu_io_ok(path, "-c 'write -P 0x22 0 256k'");
        {
            auto image = open_writable(path);
            q::create_snapshot(*image, "ours");
            const auto list = q::list_snapshots(*image);
            REQUIRE(list.size() == 2);
            CHECK(list[1].id == "2");
            CHECK(list[1].name == "ours");
            CHECK(list[1].vm_state_size == 0);
            q::apply_snapshot(*image, "theirs");
        }
        require_clean(path);
        qemu_io_ok(path, "-c 'read -P 0x11 0 256k'");

        auto r = run(qemu_img() + " snapshot -a ours " + path);
        INFO(r.output);
        REQUIRE(r.status == 0);
        require_clean(path);
        qemu_io_ok(path, "-c 'read -P 0x22 0 256k'");

        {
            auto image = open_writable(path);
            q::delete_snapshot(*image, "theirs");
        }
        require_clean(path);
        REQUIRE(run(qemu_img() + " snapshot -d ours " + path).status == 0);
        require_clean(path);
        CHECK(qemu_list(path).empty());
        qemu_io_ok(path, "-c 'read -P 0x22 0 256k'");
    }
}

TEST_CASE("deleting snapshots frees their clusters") {
    Scratch s;
    const std::string path = s.path("a.qcow2");
    make_image(path, "compat=1.1");
    qemu_io_ok(path, "-c 'write -P 0x11 0 4M'");
    {
        auto image = open_writable(path);
        q::create_snapshot(*image, "one");
    }
    qemu_io_ok(path, "-c 'write -P 0x22 0 4M'"); // every cluster copied: the snapshot alone holds 4 MiB
    {
        auto image = open_writable(path);
        q::create_snapshot(*image, "two");
        q::delete_snapshot(*image, "one");
        q::delete_snapshot(*image, "two");
    }
    require_clean(path);
    // With no snapshot left, only the active image's clusters are in use.
    auto r = run(qemu_img() + " check --output=json " + path);
    INFO(r.output);
    CHECK(r.output.find("\"allocated-clusters\": 64") != std::string::npos);
}

TEST_CASE("applying a snapshot restores its virtual size") {
    Scratch s;
    const std::string path = s.path("a.qcow2");
    make_image(path, "compat=1.1", "32M");
    qemu_io_ok(path, "-c 'write -P 0x11 0 64k'");
    {
        auto image = open_writable(path);
        q::create_snapshot(*image, "small");
        image->resize(3ull << 30, false); // a larger L1 table
        image->write(2ull << 30, std::vector<std::byte>(4096, std::byte{0x5a}));
        q::apply_snapshot(*image, "small");
        CHECK(image->virtual_size() == 32u << 20);
    }
    require_clean(path);
    qemu_io_ok(path, "-c 'read -P 0x11 0 64k'");
}

TEST_CASE("snapshot errors: duplicate name, unknown snapshot, read-only, raw") {
    Scratch s;
    const std::string path = s.path("a.qcow2");
    make_image(path, "compat=1.1");
    {
        auto image = open_writable(path);
        q::create_snapshot(*image, "x");
        try {
            q::create_snapshot(*image, "x");
            FAIL("duplicate name accepted");
        } catch (const vmstor::Error& e) {
            CHECK(e.code() == vmstor::ErrorCode::AlreadyExists);
        }
        for (auto op : {&q::apply_snapshot, &q::delete_snapshot}) {
            try {
                op(*image, "nope");
                FAIL("unknown snapshot accepted");
            } catch (const vmstor::Error& e) {
                CHECK(e.code() == vmstor::ErrorCode::NotFound);
            }
        }
    }
    {
        auto image = q::Image::open(path);
        CHECK_THROWS_AS(q::create_snapshot(*image, "y"), vmstor::Error);
        CHECK(q::list_snapshots(*image).size() == 1);
    }
    require_clean(path);
    const std::string raw = s.path("a.raw");
    REQUIRE(run(qemu_img() + " create -q -f raw " + raw + " 1M").status == 0);
    auto image = q::Image::open(raw, {.format = q::ImageFormat::Raw, .writable = true});
    try {
        q::create_snapshot(*image, "x");
        FAIL("raw image accepted");
    } catch (const vmstor::Error& e) {
        CHECK(e.code() == vmstor::ErrorCode::NotSupported);
    }
}

TEST_CASE("vmstor-img snapshot lists like qemu-img snapshot -l and exits 1 on errors") {
    Scratch s;
    const std::string path = s.path("a.qcow2");
    make_image(path, "compat=1.1");
    CHECK(run(vmstor_img() + " snapshot -l " + path).output.empty());
    REQUIRE(run(vmstor_img() + " snapshot -c first " + path).status == 0);
    REQUIRE(run(qemu_img() + " snapshot -c second " + path).status == 0);
    auto ours = run(vmstor_img() + " snapshot -l " + path);
    REQUIRE(ours.status == 0);
    CHECK(ours.output == qemu_list(path));
    auto dup = run(vmstor_img() + " snapshot -c first " + path);
    CHECK(dup.status == 1);
    CHECK(std::count(dup.output.begin(), dup.output.end(), '\n') == 1);
    CHECK(run(vmstor_img() + " snapshot -a nope " + path).status == 1);
    CHECK(run(vmstor_img() + " snapshot -l -c x " + path).status == 1);
    REQUIRE(run(vmstor_img() + " snapshot -a second " + path).status == 0);
    REQUIRE(run(vmstor_img() + " snapshot -d first " + path).status == 0);
    REQUIRE(run(vmstor_img() + " snapshot -d second " + path).status == 0);
    require_clean(path);
}
