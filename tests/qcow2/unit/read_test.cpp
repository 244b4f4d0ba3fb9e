// Reads through the engine equal qemu-img convert -O raw byte for byte, on images QEMU wrote.
#include "helpers.hpp"
#include "qcow2/image.hpp"

#include <catch2/catch.hpp>
#include <cstring>
#include <fstream>
#include <iterator>

using namespace qcow2_test;
namespace q = vmstor::qcow2;

namespace {

std::vector<char> slurp(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

void expect_reads_like_qemu(const Scratch& s, const std::string& image_path) {
    const std::string reference = s.path("reference.raw");
    REQUIRE(run(qemu_img() + " convert -O raw " + image_path + " " + reference).status == 0);
    q::OpenOptions options;
    options.require_backing_format = false;
    auto image = q::Image::open(image_path, options);
    std::vector<std::byte> data(image->virtual_size());
    // Odd-sized reads at odd offsets exercise every boundary.
    for (std::uint64_t pos = 0; pos < data.size();) {
        const std::uint64_t n = std::min<std::uint64_t>(data.size() - pos, 77777);
        image->read(pos, std::span(data).subspan(pos, n));
        pos += n;
    }
    std::vector<char> expected = slurp(reference);
    REQUIRE(expected.size() == data.size());
    CHECK(std::memcmp(expected.data(), data.data(), data.size()) == 0);
}

void qemu_io(const std::string& path, const std::string& commands, const std::string& format = "qcow2") {
    REQUIRE(run(qcow2_test::qemu_io() + " -f " + format + " " + commands + " " + path).status == 0);
}

} // namespace

TEST_CASE("reads equal qemu-img convert for every cluster size and refcount width") {
    Scratch s;
    for (const char* options : {"cluster_size=512", "cluster_size=4k,refcount_bits=1", "compat=0.10",
                                "cluster_size=2M,refcount_bits=64", "extended_l2=on,cluster_size=16k"}) {
        INFO(options);
        const std::string path = s.path("img.qcow2");
        REQUIRE(run(qemu_img() + " create -q -f qcow2 -o " + options + " " + path + " 5000000").status == 0);
        qemu_io(
            path,
            "-c 'write -P 0x11 1000 300000' -c 'write -z 2097152 1048576' -c 'write -P 0x22 4999000 1000' "
            "-c 'write -P 0x33 40000 5000'");
        expect_reads_like_qemu(s, path);
    }
}

TEST_CASE("reads follow a backing chain and read zeroes past a shorter backing file") {
    Scratch s;
    const std::string base = s.path("base.raw"), mid = s.path("mid.qcow2"), top = s.path("top.qcow2");
    REQUIRE(run(qemu_img() + " create -q -f raw " + base + " 1M").status == 0);
    qemu_io(base, "-c 'write -P 0x44 0 1M'", "raw");
    REQUIRE(run(qemu_img() + " create -q -f qcow2 -b " + base + " -F raw " + mid + " 3M").status == 0);
    qemu_io(mid, "-c 'write -P 0x55 700000 600000'");
    REQUIRE(run(qemu_img() + " create -q -f qcow2 -o extended_l2=on -b " + mid + " -F qcow2 " + top + " 4M")
                .status == 0);
    qemu_io(top, "-c 'write -P 0x66 100 100' -c 'write -z 3000000 10000'");
    expect_reads_like_qemu(s, top);
}

TEST_CASE("compressed clusters (zlib and zstd) decompress like QEMU's") {
    Scratch s;
    const std::string source = s.path("src.raw");
    REQUIRE(run(qemu_img() + " create -q -f raw " + source + " 3M").status == 0);
    qemu_io(source, "-c 'write -P 0x12 0 1M' -c 'write -P 0x34 2M 4097'", "raw");
    for (const char* type : {"zlib", "zstd"}) {
        INFO(type);
        const std::string path = s.path(std::string(type) + ".qcow2");
        REQUIRE(
            run(qemu_img() + " convert -c -O qcow2 -o compression_type=" + type + " " + source + " " + path)
                .status == 0);
        expect_reads_like_qemu(s, path);
    }
}

TEST_CASE("block status reports data, zeroes and holes") {
    Scratch s;
    const std::string path = s.path("img.qcow2");
    REQUIRE(run(qemu_img() + " create -q -f qcow2 " + path + " 1M").status == 0);
    qemu_io(path, "-c 'write -P 1 0 64k' -c 'write -z 64k 64k'");
    auto image = q::Image::open(path);
    auto data = image->block_status(0, 1 << 20);
    CHECK(data.allocated);
    CHECK(data.data);
    CHECK(data.length == 65536);
    auto zero = image->block_status(65536, 1 << 19);
    CHECK(zero.zero);
    CHECK_FALSE(zero.data);
    auto hole = image->block_status(131072, 1 << 19);
    CHECK_FALSE(hole.allocated);
}
