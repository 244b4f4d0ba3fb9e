// Header parsing: big-endian helpers and hostile headers refused with a clear message.
#include "common/error.hpp"
#include "helpers.hpp"
#include "qcow2/format.hpp"
#include "qcow2/image.hpp"

#include <catch2/catch.hpp>

using namespace qcow2_test;
using vmstor::Error;
using vmstor::ErrorCode;
namespace q = vmstor::qcow2;

namespace {

std::string fresh_image(const Scratch& s, const std::string& options = "") {
    const std::string path = s.path("img.qcow2");
    auto r = run(qemu_img() + " create -q -f qcow2 " + (options.empty() ? "" : "-o " + options + " ") + path +
                 " 64M");
    REQUIRE(r.status == 0);
    return path;
}

// Opens and expects a failure with `code` whose message mentions `words`.
void expect_refused(const std::string& path, ErrorCode code, const std::string& words) {
    try {
        q::Image::open(path);
        FAIL("the image was accepted");
    } catch (const Error& e) {
        INFO(e.what());
        CHECK(e.code() == code);
        CHECK(std::string(e.what()).find(words) != std::string::npos);
    }
}

} // namespace

TEST_CASE("big-endian helpers round-trip every width") {
    std::byte buf[8];
    q::format::store_be<std::uint64_t>(buf, 0x0102030405060708ull);
    CHECK(std::to_integer<int>(buf[0]) == 1);
    CHECK(std::to_integer<int>(buf[7]) == 8);
    CHECK(q::format::load_be64(buf) == 0x0102030405060708ull);
    q::format::store_be<std::uint16_t>(buf, 0xabcd);
    CHECK(q::format::load_be16(buf) == 0xabcd);
    q::format::store_be<std::uint32_t>(buf, 0xdeadbeef);
    CHECK(q::format::load_be32(buf) == 0xdeadbeef);
}

TEST_CASE("a valid image opens and reports its header") {
    Scratch s;
    auto image = q::Image::open(fresh_image(s, "cluster_size=4k"));
    CHECK(image->format() == q::ImageFormat::Qcow2);
    CHECK(image->virtual_size() == 64u << 20);
    CHECK(image->cluster_size() == 4096);
}

TEST_CASE("hostile headers are refused before anything is allocated for them") {
    Scratch s;
    const std::string path = fresh_image(s);
    namespace f = q::format::field;

    SECTION("version 4") {
        patch_be32(path, f::version, 4);
        expect_refused(path, ErrorCode::NotSupported, "version 4");
    }
    SECTION("cluster_bits below 9") {
        patch_be32(path, f::cluster_bits, 8);
        expect_refused(path, ErrorCode::Corrupt, "cluster_bits");
    }
    SECTION("cluster_bits above 21") {
        patch_be32(path, f::cluster_bits, 22);
        expect_refused(path, ErrorCode::Corrupt, "cluster_bits");
    }
    SECTION("an L1 table larger than 32 MiB") {
        patch_be32(path, f::l1_size, (32u << 20) / 8 + 1);
        expect_refused(path, ErrorCode::Corrupt, "L1 table");
    }
    SECTION("an L1 table too small for the virtual size") {
        patch_be64(path, f::size, 1ull << 40);
        expect_refused(path, ErrorCode::Corrupt, "too few");
    }
    SECTION("an unaligned L1 table") {
        patch_be64(path, f::l1_table_offset, 0x30200);
        expect_refused(path, ErrorCode::Corrupt, "not aligned");
    }
    SECTION("a refcount table past the end of the file") {
        patch_be64(path, f::refcount_table_offset, 1ull << 40);
        expect_refused(path, ErrorCode::Corrupt, "refcount table");
    }
    SECTION("a refcount table over the 8 MiB limit") {
        patch_be32(path, f::refcount_table_clusters, 129);
        expect_refused(path, ErrorCode::Corrupt, "refcount table");
    }
    SECTION("an unknown incompatible feature bit") {
        patch_be64(path, f::incompatible_features, 1ull << 40);
        expect_refused(path, ErrorCode::NotSupported, "incompatible feature");
    }
    SECTION("more than 65536 snapshots") {
        patch_be32(path, f::nb_snapshots, 65537);
        expect_refused(path, ErrorCode::Corrupt, "snapshots");
    }
    SECTION("a backing file name longer than 1023 bytes") {
        patch_be64(path, f::backing_file_offset, 0x200);
        patch_be32(path, f::backing_file_size, 1024);
        expect_refused(path, ErrorCode::Corrupt, "backing file name");
    }
    SECTION("LUKS encryption") {
        patch_be32(path, f::crypt_method, 2);
        expect_refused(path, ErrorCode::NotSupported, "encrypted");
    }
    SECTION("the compression type bit without a compression type") {
        patch_be64(path, f::incompatible_features, q::format::incompat_compression);
        expect_refused(path, ErrorCode::Corrupt, "compression type");
    }
    SECTION("refcount_order above 6") {
        patch_be32(path, f::refcount_order, 7);
        expect_refused(path, ErrorCode::Corrupt, "refcount_order");
    }
    SECTION("a bad magic number") {
        patch_be32(path, f::magic, 0x12345678);
        try {
            q::OpenOptions options;
            options.format = q::ImageFormat::Qcow2;
            q::Image::open(path, options);
            FAIL("accepted");
        } catch (const Error& e) {
            CHECK(e.code() == ErrorCode::Corrupt);
        }
    }
}

TEST_CASE("an external data file is refused for data access naming the feature") {
    Scratch s;
    const std::string path = s.path("ext.qcow2");
    REQUIRE(run(qemu_img() + " create -q -f qcow2 -o data_file=" + s.path("data.raw") + " " + path + " 1M")
                .status == 0);
    expect_refused(path, ErrorCode::NotSupported, "external data file");
    q::OpenOptions info_only;
    info_only.open_backing = false;
    auto image = q::Image::open(path, info_only);
    CHECK(image->info().data_file.has_value());
}

TEST_CASE("a backing file without a recorded format is not probed for untrusted images") {
    Scratch s;
    REQUIRE(run(qemu_img() + " create -q -f raw " + s.path("base.raw") + " 1M").status == 0);
    const std::string top = s.path("top.qcow2");
    REQUIRE(run(qemu_img() + " create -q -f qcow2 -b " + s.path("base.raw") + " -F raw " + top).status == 0);
    // Turn the backing format extension (the first one, right after the 112-byte header) into an unknown one.
    REQUIRE(read_be64(top, 112) >> 32 == vmstor::qcow2::format::ext_backing_format);
    patch_be32(top, 112, 0x12345678);
    expect_refused(top, ErrorCode::NotSupported, "no recorded format");
}
