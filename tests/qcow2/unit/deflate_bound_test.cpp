// The proof that a cluster cannot be deflated below a limit must never be wrong: whatever it calls
// incompressible, QEMU's deflate (run here as QEMU runs it, a new stream per cluster) does not shrink
// below the limit. And it must be worth having: random data is proven incompressible.
#include "qcow2/deflate_bound.hpp"

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <random>
#include <vector>
#include <zlib.h>

namespace q = vmstor::qcow2;

namespace {

// The size QEMU's deflate makes of `in`, or out_limit when it does not fit in out_limit bytes.
std::size_t qemu_deflate_size(const std::vector<std::uint8_t>& in, std::size_t out_limit) {
    z_stream strm{};
    REQUIRE(deflateInit2(&strm, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY) == Z_OK);
    std::vector<std::uint8_t> out(out_limit);
    strm.next_in = const_cast<Bytef*>(in.data());
    strm.avail_in = static_cast<uInt>(in.size());
    strm.next_out = out.data();
    strm.avail_out = static_cast<uInt>(out.size());
    const int rc = deflate(&strm, Z_FINISH);
    const std::size_t produced = out.size() - strm.avail_out;
    deflateEnd(&strm);
    return rc == Z_STREAM_END ? produced : out_limit;
}

bool proven_incompressible(const std::vector<std::uint8_t>& data, std::size_t limit) {
    return q::deflate_cannot_shrink(std::as_bytes(std::span(data)), limit);
}

std::vector<std::uint8_t> random_bytes(std::mt19937_64& rng, std::size_t n, unsigned alphabet = 256,
                                       unsigned base = 0) {
    std::vector<std::uint8_t> data(n);
    for (auto& b : data)
        b = static_cast<std::uint8_t>(base + rng() % alphabet);
    return data;
}

// Random data with something compressible mixed in, from barely to clearly.
std::vector<std::uint8_t> mixed_case(std::mt19937_64& rng, std::size_t n, unsigned kind) {
    std::vector<std::uint8_t> data = random_bytes(rng, n);
    const std::size_t amount = 1 + rng() % (n / 16);
    switch (kind % 8) {
    case 0: // a run of one value somewhere
        std::fill_n(data.begin() + static_cast<std::ptrdiff_t>(rng() % (n - amount)), amount,
                    std::uint8_t{0});
        break;
    case 1: // single values overwritten at random places
        for (std::size_t i = 0; i < amount; ++i)
            data[rng() % n] = 0;
        break;
    case 2: { // a smaller alphabet: Huffman codes win without any match
        data = random_bytes(rng, n, 256 - static_cast<unsigned>(rng() % 48));
        break;
    }
    case 3: { // halves over different alphabets: each deflate block alone is compressible
        const unsigned half = 128 + static_cast<unsigned>(rng() % 8);
        for (std::size_t i = 0; i < n; ++i)
            data[i] = static_cast<std::uint8_t>(i < n / 2 ? rng() % half : 256 - half + rng() % half);
        break;
    }
    case 4: { // one piece repeated at a distance inside the window
        const std::size_t length = 3 + rng() % 64, distance = 1 + rng() % 3000;
        for (std::size_t i = 0; i < amount / 8 + 1; ++i) {
            const std::size_t at = distance + rng() % (n - distance - length);
            std::copy_n(data.begin() + static_cast<std::ptrdiff_t>(at - distance), length,
                        data.begin() + static_cast<std::ptrdiff_t>(at));
        }
        break;
    }
    case 5: { // a repeat just past the window: deflate cannot use it
        const std::size_t length = 512;
        if (n < 8192)
            break;
        const std::size_t at = 4100 + rng() % (n - 4100 - length);
        std::copy_n(data.begin() + static_cast<std::ptrdiff_t>(at - 4100), length,
                    data.begin() + static_cast<std::ptrdiff_t>(at));
        break;
    }
    case 6: // text-like bytes in a stretch
        for (std::size_t i = 0, at = rng() % (n - amount); i < amount; ++i)
            data[at + i] = static_cast<std::uint8_t>('a' + rng() % 26);
        break;
    default: // untouched random data
        break;
    }
    return data;
}

} // namespace

TEST_CASE("deflate bound: random clusters are proven incompressible", "[compression]") {
    std::mt19937_64 rng(11);
    for (std::size_t cluster : {4096u, 16384u, 65536u}) {
        for (int i = 0; i < 8; ++i) {
            const auto data = random_bytes(rng, cluster);
            INFO(fmt::format("cluster {} sample {}", cluster, i));
            CHECK(proven_incompressible(data, cluster - 512));
            CHECK(qemu_deflate_size(data, cluster - 512) == cluster - 512);
        }
    }
}

TEST_CASE("deflate bound: never claims what deflate disproves", "[compression]") {
    std::mt19937_64 rng(5);
    int proven = 0, compressible = 0;
    for (std::size_t cluster : {4096u, 65536u}) {
        const std::size_t limit = cluster - 512;
        for (unsigned i = 0; i < (cluster == 4096 ? 1200u : 240u); ++i) {
            const auto data = mixed_case(rng, cluster, i);
            const std::size_t size = qemu_deflate_size(data, limit);
            compressible += size < limit;
            if (proven_incompressible(data, limit)) {
                ++proven;
                INFO(fmt::format("cluster {} case {} (kind {}): deflate made {} bytes", cluster, i, i % 8,
                                 size));
                REQUIRE(size >= limit);
            }
        }
    }
    // Both answers must occur, or the cases above test nothing.
    CHECK(proven > 100);
    CHECK(compressible > 100);
}

TEST_CASE("deflate bound: compressible and unsupported inputs are left to deflate", "[compression]") {
    std::vector<std::uint8_t> zeroes(65536, 0);
    CHECK_FALSE(proven_incompressible(zeroes, 65024));
    std::vector<std::uint8_t> text(65536);
    for (std::size_t i = 0; i < text.size(); ++i)
        text[i] = static_cast<std::uint8_t>("qcow2 cluster refcount "[i % 23]);
    CHECK_FALSE(proven_incompressible(text, 65024));
    std::mt19937_64 rng(3);
    CHECK_FALSE(proven_incompressible(random_bytes(rng, 131072), 131072 - 512)); // over 64 KiB: not handled
}

TEST_CASE("deflate bound: the limit compress_cluster proves against is one random clusters meet",
          "[compression]") {
    std::mt19937_64 rng(17);
    for (std::size_t cluster : {512u, 4096u, 65536u}) {
        const std::size_t limit = q::deflate_proof_limit(cluster);
        INFO(fmt::format("cluster {}, limit {}", cluster, limit));
        CHECK(limit < cluster);
        CHECK(cluster - limit <= 512); // what a skipped cluster could at most have saved
        const auto data = random_bytes(rng, cluster);
        CHECK(proven_incompressible(data, limit));
        CHECK(qemu_deflate_size(data, limit) == limit);
    }
}
