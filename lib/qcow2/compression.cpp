#include "compression.hpp"

#include "deflate_bound.hpp"

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

std::size_t deflate_raw(std::span<const std::byte> in, std::span<std::byte> out) {
    // QEMU inflates with a 4 KiB window (windowBits -12), so we must deflate with the same window;
    // libdeflate always uses 32 KiB and is therefore not usable here. One stream per thread, reset
    // for each cluster: deflateInit2 would allocate and clear its ~270 KiB of state every time.
    struct Stream {
        z_stream strm{};
        bool ready = false;
        Stream() {
            ready =
                deflateInit2(&strm, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY) == Z_OK;
        }
        ~Stream() {
            if (ready)
                deflateEnd(&strm);
        }
        Stream(const Stream&) = delete;
        Stream& operator=(const Stream&) = delete;
    };
    if (deflate_cannot_shrink(in, deflate_proof_limit(out.size() + 1)))
        return 0; // random-looking data: deflate would save under a sector, and find that out slowly
    thread_local Stream stream;
    if (!stream.ready || deflateReset(&stream.strm) != Z_OK)
        return 0;
    z_stream& strm = stream.strm;
    strm.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in.data()));
    strm.avail_in = static_cast<uInt>(in.size());
    strm.next_out = reinterpret_cast<Bytef*>(out.data());
    strm.avail_out = static_cast<uInt>(out.size());
    const int rc = deflate(&strm, Z_FINISH);
    return rc == Z_STREAM_END ? out.size() - strm.avail_out : 0; // Z_OK: out was full before the end
}

std::size_t zstd_compress(std::span<const std::byte> in, std::span<std::byte> out) {
    struct Free {
        void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
    };
    thread_local std::unique_ptr<ZSTD_CCtx, Free> cctx(ZSTD_createCCtx());
    if (!cctx)
        return 0;
    const std::size_t rc =
        ZSTD_compressCCtx(cctx.get(), out.data(), out.size(), in.data(), in.size(), ZSTD_CLEVEL_DEFAULT);
    return ZSTD_isError(rc) ? 0 : rc; // dstSize_tooSmall when it does not fit
}

} // namespace

bool decompress_cluster(CompressionType type, std::span<const std::byte> in, std::span<std::byte> out) {
    return type == CompressionType::Zlib ? inflate_raw(in, out) : zstd_decompress(in, out);
}

std::size_t compress_cluster(CompressionType type, std::span<const std::byte> in, std::span<std::byte> out) {
    return type == CompressionType::Zlib ? deflate_raw(in, out) : zstd_compress(in, out);
}

} // namespace vmstor::qcow2
