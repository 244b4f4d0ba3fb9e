// create, convert, resize, compare and measure, each checked against qemu-img.
#include "common/error.hpp"
#include "helpers.hpp"
#include "qcow2/format.hpp"
#include "qcow2/image.hpp"
#include "qcow2/operations.hpp"
#include "qcow2/read_ahead.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdint>
#include <nlohmann/json.hpp>

using namespace qcow2_test;
namespace q = vmstor::qcow2;

namespace {

nlohmann::json qemu_info(const std::string& path) {
    auto r = run(qemu_img() + " info --output=json " + path);
    REQUIRE(r.status == 0);
    auto j = nlohmann::json::parse(r.output);
    for (const char* key : {"filename", "actual-size", "full-backing-filename", "backing-filename"})
        j.erase(key);
    return j;
}

} // namespace

TEST_CASE("every create option gives an image qemu-img checks clean and describes like its own") {
    Scratch s;
    for (const char* options :
         {"compat=0.10", "compat=1.1", "cluster_size=512", "cluster_size=2M", "refcount_bits=1",
          "refcount_bits=64", "lazy_refcounts=on", "preallocation=metadata", "preallocation=falloc",
          "preallocation=full", "extended_l2=on", "compression_type=zstd",
          "cluster_size=4k,refcount_bits=8,preallocation=metadata"}) {
        INFO(options);
        q::CreateOptions create;
        for (const auto& part : {std::string(options)}) {
            std::size_t start = 0;
            while (start < part.size()) {
                std::size_t comma = part.find(',', start);
                std::string item = part.substr(start, comma - start);
                auto eq = item.find('=');
                q::set_create_option(create, item.substr(0, eq), item.substr(eq + 1));
                start = comma == std::string::npos ? part.size() : comma + 1;
            }
        }
        create.size = 20u << 20;
        const std::string ours = s.path("ours.qcow2"), theirs = s.path("theirs.qcow2");
        q::create_image(ours, create);
        REQUIRE(run(qemu_img() + " create -q -f qcow2 -o " + options + " " + theirs + " 20M").status == 0);
        auto check = run(qemu_img() + " check " + ours);
        INFO(check.output);
        CHECK(check.status == 0);
        CHECK(qemu_info(ours) == qemu_info(theirs));
        CHECK(run(qemu_img() + " compare " + ours + " " + theirs).status == 0);
    }
}

TEST_CASE("invalid create options are refused with qemu-img's reasons") {
    Scratch s;
    q::CreateOptions create;
    create.size = 1 << 20;
    create.version = 2;
    create.refcount_bits = 8;
    CHECK_THROWS_WITH(q::create_image(s.path("a"), create), Catch::Contains("refcount widths"));
    create = {};
    create.extended_l2 = true;
    create.cluster_size = 4096;
    CHECK_THROWS_WITH(q::create_image(s.path("a"), create), Catch::Contains("16384"));
    create = {};
    create.cluster_size = 3000;
    CHECK_THROWS_WITH(q::create_image(s.path("a"), create), Catch::Contains("power of two"));
    create = {};
    create.backing_file = "base";
    CHECK_THROWS_WITH(q::create_image(s.path("a"), create), Catch::Contains("backing format"));
}

TEST_CASE("convert to raw, qcow2 and compressed qcow2 keeps the guest data") {
    Scratch s;
    const std::string source = s.path("src.qcow2");
    REQUIRE(run(qemu_img() + " create -q -f qcow2 " + source + " 8M").status == 0);
    REQUIRE(run(qemu_io() +
                " -f qcow2 -c 'write -P 0x31 0 3M' -c 'write -P 0x32 5M 12345' -c 'write -z 1M 64k' " +
                source)
                .status == 0);
    auto image = q::Image::open(source);
    for (int variant = 0; variant < 4; ++variant) {
        INFO(variant);
        q::ConvertOptions options;
        options.target.format = variant == 0 ? q::ImageFormat::Raw : q::ImageFormat::Qcow2;
        options.compress = variant >= 2;
        options.target.compression_type = variant == 3 ? q::CompressionType::Zstd : q::CompressionType::Zlib;
        double last_progress = 0;
        options.progress = [&](double percent) {
            last_progress = percent;
        };
        const std::string target = s.path("target");
        q::convert_image(*image, target, options);
        CHECK(last_progress == Approx(100.0));
        CHECK(run(qemu_img() + " compare -f qcow2 " + source + " " + target).status == 0);
        if (variant > 0)
            CHECK(run(qemu_img() + " check " + target).status == 0);
    }
}

TEST_CASE("convert stops when cancelled") {
    Scratch s;
    const std::string source = s.path("src.raw");
    REQUIRE(run(qemu_img() + " create -q -f raw " + source + " 8M").status == 0);
    REQUIRE(run(qemu_io() + " -f raw -c 'write -P 1 0 8M' " + source).status == 0);
    auto image = q::Image::open(source);
    std::atomic<bool> cancel{true};
    q::ConvertOptions options;
    options.cancel = &cancel;
    try {
        q::convert_image(*image, s.path("t.raw"), options);
        FAIL("not cancelled");
    } catch (const vmstor::Error& e) {
        CHECK(e.code() == vmstor::ErrorCode::Cancelled);
    }
}

TEST_CASE("a source that fails to read half-way fails the convert with its error") {
    Scratch s;
    const std::string source = s.path("src.qcow2");
    REQUIRE(run(qemu_img() + " create -q -f qcow2 " + source + " 16M").status == 0);
    REQUIRE(run(qemu_io() + " -f qcow2 -c 'write -P 5 0 16M' " + source).status == 0);
    // Cluster 200 (12.5 MiB in, several chunks past the start) becomes a compressed cluster whose
    // descriptor points at the L2 table itself: reading it fails after the reader thread has run ahead.
    const std::uint64_t l2 =
        read_be64(source, read_be64(source, q::format::field::l1_table_offset)) & q::format::l1e_offset_mask;
    patch_be64(source, l2 + 8 * 200, q::format::oflag_compressed | l2);
    q::ConvertOptions options;
    options.target.format = q::ImageFormat::Raw;
    try {
        q::convert_image(*q::Image::open(source), s.path("out.raw"), options);
        FAIL("the convert read a broken compressed cluster without an error");
    } catch (const vmstor::Error& e) {
        INFO(e.what());
        CHECK(e.code() == vmstor::ErrorCode::Corrupt);
    }
}

TEST_CASE("the read-ahead hands out its data on page boundaries, in order, with the holes as zero pieces") {
    Scratch s;
    const std::string source = s.path("src.raw");
    REQUIRE(run(qemu_img() + " create -q -f raw " + source + " 12M").status == 0);
    REQUIRE(run(qemu_io() + " -f raw -c 'write -P 1 0 5M' -c 'write -P 2 9M 1M' " + source).status == 0);
    auto image = q::Image::open(source);
    q::ReadAhead ahead(*image, 2 << 20, 4, nullptr);
    q::ReadAhead::Piece piece;
    std::uint64_t expected = 0, data_bytes = 0;
    while (ahead.next(piece)) {
        CHECK(piece.offset == expected);
        expected += piece.length;
        if (!piece.zero) {
            // The kernel copies to and from an unaligned buffer several times slower.
            CHECK(reinterpret_cast<std::uintptr_t>(piece.data.data()) % 4096 == 0);
            CHECK(piece.data.size() == piece.length);
            data_bytes += piece.length;
        }
        ahead.recycle(std::move(piece.data));
    }
    CHECK(expected == 12ull << 20);
    CHECK(data_bytes == 6ull << 20);
}

TEST_CASE("convert into an existing raw target zeroes every range it does not copy") {
    Scratch s;
    const std::string source = s.path("src.qcow2");
    REQUIRE(run(qemu_img() + " create -q -f qcow2 " + source + " 8M").status == 0);
    // Data, an explicit zero range and an unallocated range: only the data may survive in the target.
    REQUIRE(
        run(qemu_io() + " -f qcow2 -c 'write -P 7 1M 1M' -c 'write -z 4M 1M' -c 'write -P 3 6M 4k' " + source)
            .status == 0);
    // The old content of a reused partition: every byte 0xaa, and 2 MiB longer than the source.
    const std::string target = s.path("device.raw");
    REQUIRE(run(qemu_img() + " create -q -f raw " + target + " 10M").status == 0);
    REQUIRE(run(qemu_io() + " -f raw -c 'write -P 0xaa 0 10M' " + target).status == 0);
    q::ConvertOptions options;
    options.target.format = q::ImageFormat::Raw;
    options.into_existing = true;
    q::convert_image(*q::Image::open(source), target, options);
    CHECK(run(qemu_img() + " compare -f qcow2 -F raw " + source + " " + target).status == 0);
    CHECK(run(qemu_io() + " -f raw -c 'read -P 0 8M 2M' " + target).output.find("failed") ==
          std::string::npos);

    const std::string small = s.path("small.raw");
    REQUIRE(run(qemu_img() + " create -q -f raw " + small + " 4M").status == 0);
    CHECK_THROWS(q::convert_image(*q::Image::open(source), small, options));
    options.target.format = q::ImageFormat::Qcow2;
    CHECK_THROWS(q::convert_image(*q::Image::open(source), target, options));
}

TEST_CASE("resize grows the L1 table and shrinks only when asked") {
    Scratch s;
    const std::string path = s.path("img.qcow2");
    REQUIRE(run(qemu_img() + " create -q -f qcow2 -o cluster_size=512 " + path + " 1M").status == 0);
    REQUIRE(run(qemu_io() + " -f qcow2 -c 'write -P 9 0 1M' " + path).status == 0);
    q::OpenOptions options;
    options.writable = true;
    {
        auto image = q::Image::open(path, options);
        image->resize(300u << 20, false);
        CHECK_THROWS(image->resize(1u << 19, false));
    }
    CHECK(run(qemu_img() + " check " + path).status == 0);
    CHECK(q::Image::open(path)->virtual_size() == 300u << 20);
    {
        auto image = q::Image::open(path, options);
        image->resize(1u << 19, true);
    }
    auto check = run(qemu_img() + " check " + path);
    INFO(check.output);
    CHECK(check.status == 0);
    CHECK(run(qemu_io() + " -f qcow2 -c 'read -P 9 0 512k' " + path).output.find("failed") ==
          std::string::npos);
}

TEST_CASE("compare finds the first differing sector like qemu-img") {
    Scratch s;
    const std::string a = s.path("a.qcow2"), b = s.path("b.qcow2");
    REQUIRE(run(qemu_img() + " create -q -f qcow2 " + a + " 4M").status == 0);
    REQUIRE(run(qemu_img() + " create -q -f qcow2 " + b + " 5M").status == 0);
    auto ia = q::Image::open(a), ib = q::Image::open(b);
    CHECK(q::compare_images(*ia, *ib).identical);
    REQUIRE(run(qemu_io() + " -f qcow2 -c 'write -P 1 3000000 10' " + b).status == 0);
    ib = q::Image::open(b);
    auto r = q::compare_images(*ia, *ib);
    CHECK_FALSE(r.identical);
    CHECK(r.mismatch_offset == 3000000 / 512 * 512);
    CHECK(run(qemu_img() + " compare " + a + " " + b).output.find(std::to_string(r.mismatch_offset)) !=
          std::string::npos);
}

TEST_CASE("measure agrees with qemu-img measure") {
    Scratch s;
    const std::string source = s.path("src.qcow2");
    REQUIRE(run(qemu_img() + " create -q -f qcow2 " + source + " 100M").status == 0);
    REQUIRE(run(qemu_io() + " -f qcow2 -c 'write -P 1 0 3M' -c 'write -P 2 50M 100k' " + source).status == 0);
    auto image = q::Image::open(source);
    for (const char* options : {"", "-o cluster_size=4k", "-o refcount_bits=1", "-o extended_l2=on"}) {
        INFO(options);
        q::CreateOptions target;
        std::string opts = options;
        if (!opts.empty()) {
            auto kv = opts.substr(3);
            auto eq = kv.find('=');
            q::set_create_option(target, kv.substr(0, eq), kv.substr(eq + 1));
        }
        auto ours = q::measure_image(target, image.get(), 0);
        auto r = run(qemu_img() + " measure --output=json -O qcow2 " + opts + " " + source);
        REQUIRE(r.status == 0);
        auto theirs = nlohmann::json::parse(r.output);
        CHECK(ours.required == theirs["required"].get<std::uint64_t>());
        CHECK(ours.fully_allocated == theirs["fully-allocated"].get<std::uint64_t>());
    }
}
