// check and repair find what qemu-img check finds and repair it the same way.
#include "common/error.hpp"
#include "helpers.hpp"
#include "qcow2/format.hpp"
#include "qcow2/image.hpp"

#include <catch2/catch.hpp>

using namespace qcow2_test;
namespace q = vmstor::qcow2;

namespace {

std::string image_with_data(const Scratch& s) {
    const std::string path = s.path("img.qcow2");
    REQUIRE(run(qemu_img() + " create -q -f qcow2 " + path + " 10M").status == 0);
    REQUIRE(run(qemu_io() + " -f qcow2 -c 'write -P 1 0 1M' " + path).status == 0);
    return path;
}

std::uint64_t refblock(const std::string& path) {
    return read_be64(path, read_be64(path, q::format::field::refcount_table_offset));
}

q::CheckResult check(const std::string& path, q::RepairMode repair) {
    q::OpenOptions options;
    options.writable = repair != q::RepairMode::None;
    return q::Image::open(path, options)->check(repair);
}

} // namespace

TEST_CASE("check of a clean image finds nothing and counts like qemu-img") {
    Scratch s;
    const std::string path = image_with_data(s);
    auto r = check(path, q::RepairMode::None);
    CHECK(r.corruptions == 0);
    CHECK(r.leaks == 0);
    CHECK(r.allocated_clusters == 16);
    CHECK(r.total_clusters == 160);
    CHECK(r.image_end_offset == 0x50000 + 16 * 65536);
}

TEST_CASE("a leaked cluster is found and repaired with -r leaks") {
    Scratch s;
    const std::string path = image_with_data(s);
    // One more cluster at the end of the file, counted but referenced by nothing: a leak.
    REQUIRE(run("truncate -s +65536 " + path).status == 0);
    patch_file(path, refblock(path) + 2 * 21, {0, 1});
    auto found = check(path, q::RepairMode::None);
    CHECK(found.leaks == 1);
    CHECK(found.corruptions == 0);
    CHECK(run(qemu_img() + " check " + path).status == 3);
    auto repaired = check(path, q::RepairMode::Leaks);
    CHECK(repaired.leaks_fixed == 1);
    CHECK(repaired.leaks == 0);
    CHECK(run(qemu_img() + " check " + path).status == 0);
}

TEST_CASE("a refcount lower than the references is a corruption repaired with -r all") {
    Scratch s;
    const std::string path = image_with_data(s);
    patch_file(path, refblock(path) + 2 * 6, {0, 0});
    auto found = check(path, q::RepairMode::None);
    CHECK(found.corruptions >= 1);
    CHECK(run(qemu_img() + " check " + path).status == 2);
    auto repaired = check(path, q::RepairMode::All);
    CHECK(repaired.corruptions_fixed >= 1);
    CHECK(repaired.corruptions == 0);
    auto qemu = run(qemu_img() + " check " + path);
    INFO(qemu.output);
    CHECK(qemu.status == 0);
}

TEST_CASE("an L2 entry pointing past the end of the file is a corruption") {
    Scratch s;
    const std::string path = image_with_data(s);
    const std::uint64_t l2 =
        read_be64(path, read_be64(path, q::format::field::l1_table_offset)) & q::format::l1e_offset_mask;
    patch_be64(path, l2 + 8 * 20, (1ull << 40) | q::format::oflag_copied);
    auto found = check(path, q::RepairMode::None);
    CHECK(found.corruptions >= 1);
    CHECK(run(qemu_img() + " check " + path).status == 2);
}

TEST_CASE("raw images have no checks") {
    Scratch s;
    const std::string path = s.path("a.raw");
    REQUIRE(run(qemu_img() + " create -q -f raw " + path + " 1M").status == 0);
    CHECK_THROWS_AS(check(path, q::RepairMode::None), vmstor::Error);
}
