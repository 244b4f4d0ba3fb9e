// Writes through the engine: a property test against qemu-io on a copy, copy-on-write from backing
// files and snapshots, and the overlap check.
#include "common/error.hpp"
#include "helpers.hpp"
#include "qcow2/format.hpp"
#include "qcow2/image.hpp"

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <random>

using namespace qcow2_test;
namespace q = vmstor::qcow2;

namespace {

// Applies the same random writes, zero writes and discards through the engine and through qemu-io,
// then asks qemu-img whether both images read the same and whether ours is consistent.
void random_writes_match_qemu(const Scratch& s, const std::string& ours, std::uint32_t seed, int operations) {
    const std::string theirs = s.path("theirs.qcow2");
    REQUIRE(run("cp " + ours + " " + theirs).status == 0);
    std::mt19937_64 rng(seed);
    std::string commands;
    {
        q::OpenOptions options;
        options.writable = true;
        options.require_backing_format = false;
        auto image = q::Image::open(ours, options);
        const std::uint64_t size = image->virtual_size();
        const std::uint64_t cluster = image->cluster_size();
        for (int i = 0; i < operations; ++i) {
            const std::uint64_t offset = rng() % size;
            std::uint64_t length = 1 + rng() % (3 * cluster + 1000);
            length = std::min(length, size - offset);
            const int kind = static_cast<int>(rng() % 10);
            if (kind < 7) {
                const auto pattern = static_cast<std::uint8_t>(1 + rng() % 255);
                std::vector<std::byte> data(length, std::byte{pattern});
                image->write(offset, data);
                commands += fmt::format(" -c 'write -P {} {} {}'", pattern, offset, length);
            } else if (kind < 9) {
                image->write_zeroes(offset, length);
                commands += fmt::format(" -c 'write -z {} {}'", offset, length);
            } else {
                image->discard(offset, length);
                commands += fmt::format(" -c 'discard {} {}'", offset, length);
            }
        }
        image->flush();
    }
    auto io = run(qemu_io() + " -f qcow2" + commands + " " + theirs);
    REQUIRE(io.status == 0);
    auto compare = run(qemu_img() + " compare -f qcow2 -F qcow2 " + ours + " " + theirs);
    INFO(compare.output);
    CHECK(compare.status == 0);
    auto check = run(qemu_img() + " check " + ours);
    INFO(check.output);
    CHECK(check.status == 0);
}

std::string create(const Scratch& s, const std::string& name, const std::string& options,
                   const std::string& size) {
    const std::string path = s.path(name);
    REQUIRE(run(qemu_img() + " create -q -f qcow2 " + options + " " + path + " " + size).status == 0);
    return path;
}

} // namespace

TEST_CASE("random writes, zero writes and discards read back like qemu-io's and leave a clean image") {
    Scratch s;
    std::uint32_t seed = 1;
    for (const char* options :
         {"", "-o cluster_size=512", "-o cluster_size=4k,refcount_bits=1", "-o compat=0.10",
          "-o extended_l2=on,cluster_size=32k", "-o refcount_bits=64,cluster_size=2M", "-o lazy_refcounts=on",
          "-o cluster_size=1k,refcount_bits=2"}) {
        INFO(options);
        const std::string path = create(s, "ours.qcow2", options, "3333333");
        random_writes_match_qemu(s, path, seed++, 60);
    }
}

TEST_CASE("writes copy partial clusters from raw and qcow2 backing files") {
    Scratch s;
    const std::string base = s.path("base.raw");
    REQUIRE(run(qemu_img() + " create -q -f raw " + base + " 2M").status == 0);
    REQUIRE(run(qemu_io() + " -f raw -c 'write -P 0x77 0 2M' " + base).status == 0);
    const std::string mid = create(s, "mid.qcow2", "-b " + base + " -F raw", "3M");
    REQUIRE(run(qemu_io() + " -f qcow2 -c 'write -P 0x78 1M 100k' " + mid).status == 0);
    for (const char* options : {"", "-o extended_l2=on", "-o compat=0.10,cluster_size=4k"}) {
        INFO(options);
        const std::string top =
            create(s, "ours.qcow2", std::string(options) + " -b " + mid + " -F qcow2", "4M");
        random_writes_match_qemu(s, top, 99, 40);
    }
}

TEST_CASE("writes to clusters shared with a snapshot copy them and keep the snapshot intact") {
    Scratch s;
    const std::string path = create(s, "ours.qcow2", "-o cluster_size=4k", "2M");
    REQUIRE(run(qemu_io() + " -f qcow2 -c 'write -P 0x21 0 2M' " + path).status == 0);
    REQUIRE(run(qemu_img() + " snapshot -c before " + path).status == 0);
    random_writes_match_qemu(s, path, 7, 50);
    // The snapshot still holds the old data.
    const std::string copy = s.path("snap.qcow2");
    REQUIRE(run("cp " + path + " " + copy + " && " + qemu_img() + " snapshot -a before " + copy).status == 0);
    CHECK(run(qemu_io() + " -f qcow2 -c 'read -P 0x21 0 2M' " + copy)
              .output.find("Pattern verification failed") == std::string::npos);
}

TEST_CASE("lazy refcounts mark the image dirty while open and clean after a flush and close") {
    Scratch s;
    const std::string path = create(s, "lazy.qcow2", "-o lazy_refcounts=on", "1M");
    q::OpenOptions options;
    options.writable = true;
    {
        auto image = q::Image::open(path, options);
        std::vector<std::byte> data(4096, std::byte{9});
        image->write(0, data);
        CHECK(image->info().dirty);
    }
    auto reopened = q::Image::open(path);
    CHECK_FALSE(reopened->info().dirty);
    CHECK(run(qemu_img() + " check " + path).status == 0);
}

TEST_CASE("a dirty image has its refcounts rebuilt when opened for writing") {
    Scratch s;
    const std::string path = create(s, "dirty.qcow2", "-o lazy_refcounts=on", "1M");
    REQUIRE(run(qemu_io() + " -f qcow2 -c 'write -P 3 0 64k' " + path).status == 0);
    // Simulate a crash: refcount of the data cluster lost, dirty bit set.
    const std::uint64_t refblock = read_be64(path, 0x10000);
    patch_file(path, refblock + 2 * 4, {0, 0});
    patch_be64(path, q::format::field::incompatible_features, q::format::incompat_dirty);
    q::OpenOptions options;
    options.writable = true;
    { auto image = q::Image::open(path, options); }
    auto check = run(qemu_img() + " check " + path);
    INFO(check.output);
    CHECK(check.status == 0);
}

TEST_CASE("a metadata write that would overlap other metadata marks the image corrupt and is refused") {
    Scratch s;
    const std::string path = create(s, "evil.qcow2", "", "1M");
    REQUIRE(run(qemu_io() + " -f qcow2 -c 'write -P 5 0 64k' " + path).status == 0);
    // Point the first L1 entry at the refcount table, claiming it is a private L2 table.
    const std::uint64_t l1 = read_be64(path, q::format::field::l1_table_offset);
    const std::uint64_t refcount_table = read_be64(path, q::format::field::refcount_table_offset);
    patch_be64(path, l1, refcount_table | q::format::oflag_copied);
    q::OpenOptions options;
    options.writable = true;
    {
        auto image = q::Image::open(path, options);
        std::vector<std::byte> data(512, std::byte{1});
        try {
            image->write(65536 * 3, data);
            image->flush();
            FAIL("the overlapping write was not refused");
        } catch (const vmstor::Error& e) {
            CHECK(e.code() == vmstor::ErrorCode::Corrupt);
            CHECK(std::string(e.what()).find("overlap") != std::string::npos);
        }
    }
    CHECK(q::Image::open(path)->info().corrupt);
}

TEST_CASE("persistent bitmaps are in use only while we write, and consistent after a clean close") {
    Scratch s;
    const std::string path = create(s, "bitmaps.qcow2", "", "4M");
    REQUIRE(run(qemu_img() + " bitmap --add " + path + " tracked").status == 0);
    REQUIRE(run(qemu_io() + " -f qcow2 -c 'write -P 1 0 64k' " + path).status == 0);
    {
        auto image = q::Image::open(path);
        REQUIRE(image->info().bitmaps.size() == 1);
        CHECK_FALSE(image->info().bitmaps[0].in_use);
    }
    {
        q::OpenOptions options;
        options.writable = true;
        auto image = q::Image::open(path, options);
        const std::vector<std::byte> data(4096, std::byte{7});
        image->write(1 << 20, data);
        image->flush();
        CHECK(q::Image::open(path)->info().bitmaps[0].in_use); // as a crash would leave it
    }
    random_writes_match_qemu(s, path, 11, 10);
    auto info = q::Image::open(path)->info();
    REQUIRE(info.bitmaps.size() == 1);
    CHECK(info.bitmaps[0].name == "tracked");
    CHECK_FALSE(info.bitmaps[0].in_use);
    CHECK(run(qemu_img() + " info " + path).output.find("in-use") == std::string::npos);
    CHECK(run(qemu_img() + " check " + path).status == 0);
    CHECK(run(qemu_img() + " convert --bitmaps -O qcow2 " + path + " " + s.path("copy.qcow2")).status == 0);
}
