#include "compression.hpp"

#include <libdeflate.h>
#include <memory>
#include <zlib.h>
#include <zstd.h>

namespace vmstor::qcow2 {

namespace {

bool inflate_raw(std::span<const std::byte> in, std::span<std::byte> out) {
    // libdeflate is several times faster than zlib and accepts trailing input with the _ex variant.
    struct Free {
        void operator()(libdeflate_decompressor* d) const { libdeflate_free_decompressor(d); }
    };
    thread_local std::unique_ptr<libdeflate_decompressor, Free> decompressor(libdeflate_alloc_decompressor());
    if (!decompressor)
        return false;
    std::size_t in_used = 0, out_done = 0;
    auto rc = libdeflate_deflate_decompress_ex(decompressor.get(), in.data(), in.size(), out.data(),
                                               out.size(), &in_used, &out_done);
    return rc == LIBDEFLATE_SUCCESS && out_done == out.size();
}

bool zstd_decompress(std::span<const std::byte> in, std::span<std::byte> out) {
    struct Free {
        void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
    };
    thread_local std::unique_ptr<ZSTD_DCtx, Free> dctx(ZSTD_createDCtx());
    if (!dctx)
        return false;
    ZSTD_DCtx_reset(dctx.get(), ZSTD_reset_session_only);
    ZSTD_inBuffer input{in.data(), in.size(), 0};
    ZSTD_outBuffer output{out.data(), out.size(), 0};
    // The stream may hold several frames; stop once the cluster is full, ignoring the sector's tail.
    while (output.pos < output.size) {
        const std::size_t rc = ZSTD_decompressStream(dctx.get(), &output, &input);
        if (ZSTD_isError(rc))
            return false;
        if (input.pos == input.size && output.pos < output.size)
            return false;
    }
    return true;
}

std::vector<std::byte> deflate_raw(std::span<const std::byte> in, std::size_t max_size) {
    // QEMU inflates with a 4 KiB window (windowBits -12), so we must deflate with the same window;
    // libdeflate always uses 32 KiB and is therefore not usable here.
    z_stream strm{};
    if (deflateInit2(&strm, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY) != Z_OK)
        return {};
    std::vector<std::byte> out(max_size);
    strm.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in.data()));
    strm.avail_in = static_cast<uInt>(in.size());
    strm.next_out = reinterpret_cast<Bytef*>(out.data());
    strm.avail_out = static_cast<uInt>(out.size());
    int rc = deflate(&strm, Z_FINISH);
    std::size_t produced = out.size() - strm.avail_out;
    deflateEnd(&strm);
    if (rc != Z_STREAM_END || produced >= max_size)
        return {};
    out.resize(produced);
    out.shrink_to_fit(); // a batch holds many results: only what they need
    return out;
}

std::vector<std::byte> zstd_compress(std::span<const std::byte> in, std::size_t max_size) {
    struct Free {
        void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
    };
    thread_local std::unique_ptr<ZSTD_CCtx, Free> cctx(ZSTD_createCCtx());
    if (!cctx)
        return {};
    std::vector<std::byte> out(max_size);
    std::size_t rc =
        ZSTD_compressCCtx(cctx.get(), out.data(), out.size(), in.data(), in.size(), ZSTD_CLEVEL_DEFAULT);
    if (ZSTD_isError(rc) || rc >= max_size)
        return {};
    out.resize(rc);
    out.shrink_to_fit();
    return out;
}

} // namespace

bool decompress_cluster(CompressionType type, std::span<const std::byte> in, std::span<std::byte> out) {
    return type == CompressionType::Zlib ? inflate_raw(in, out) : zstd_decompress(in, out);
}

std::vector<std::byte> compress_cluster(CompressionType type, std::span<const std::byte> in,
                                        std::size_t max_size) {
    return type == CompressionType::Zlib ? deflate_raw(in, max_size) : zstd_compress(in, max_size);
}

} // namespace vmstor::qcow2
