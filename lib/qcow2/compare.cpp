// compare (as qemu-img compare) and measure (as qemu-img measure).
#include "aligned_buffer.hpp"
#include "chain_status.hpp"
#include "common/error.hpp"
#include "format.hpp"
#include "operations.hpp"

#include <cstring>

namespace vmstor::qcow2 {

namespace {

constexpr std::uint64_t compare_chunk = 2ull << 20;

// The first 512-byte sector in [offset, offset+length) that is not zero, if any.
std::optional<std::uint64_t> first_nonzero_sector(Image& image, std::uint64_t offset, std::uint64_t length) {
    AlignedBuffer buf;
    for (std::uint64_t pos = offset; pos < offset + length;) {
        ChainStatus s = chain_block_status(image, pos, offset + length - pos);
        if (!s.zero) {
            for (std::uint64_t p = pos; p < pos + s.length;) {
                const std::uint64_t n = std::min(compare_chunk, pos + s.length - p);
                buf.resize(n);
                image.read(p, buf);
                for (std::uint64_t i = 0; i < n; ++i)
                    if (buf[i] != std::byte{0})
                        return p + i / 512 * 512;
                p += n;
            }
        }
        pos += s.length;
    }
    return std::nullopt;
}

} // namespace

CompareResult compare_images(Image& a, Image& b, const ProgressCallback& progress, bool strict) {
    const std::uint64_t common = std::min(a.virtual_size(), b.virtual_size());
    const std::uint64_t total = std::max(a.virtual_size(), b.virtual_size());
    AlignedBuffer buf_a, buf_b;
    for (std::uint64_t pos = 0; pos < common;) {
        ChainStatus sa = chain_block_status(a, pos, common - pos);
        ChainStatus sb = chain_block_status(b, pos, sa.length);
        // As qemu-img: allocation and whether a host offset is known count as much as zero and data.
        if (strict && (sa.zero != sb.zero || sa.data != sb.data || sa.present != sb.present ||
                       sa.offset.has_value() != sb.offset.has_value())) {
            CompareResult r{false, pos};
            r.status_mismatch = true;
            return r;
        }
        const bool both_zero = sa.zero && sb.zero;
        const std::uint64_t n =
            both_zero ? std::min(sa.length, sb.length) : std::min({sa.length, sb.length, compare_chunk});
        if (!both_zero) {
            buf_a.resize(n);
            buf_b.resize(n);
            if (sa.zero)
                std::memset(buf_a.data(), 0, n);
            else
                a.read(pos, buf_a);
            if (sb.zero)
                std::memset(buf_b.data(), 0, n);
            else
                b.read(pos, buf_b);
            if (std::memcmp(buf_a.data(), buf_b.data(), n) != 0) {
                std::uint64_t i = 0;
                while (buf_a[i] == buf_b[i])
                    ++i;
                return {false, pos + i / 512 * 512};
            }
        }
        pos += n;
        if (progress && total)
            progress(100.0 * static_cast<double>(pos) / static_cast<double>(total));
    }
    Image& longer = a.virtual_size() > b.virtual_size() ? a : b;
    if (auto at = first_nonzero_sector(longer, common, total - common))
        return {false, *at};
    if (progress)
        progress(100.0);
    return {};
}

namespace {

std::uint64_t refcount_metadata_size(std::uint64_t clusters, std::uint64_t cluster_size,
                                     unsigned refcount_order) {
    // The fixed point where no more refcount blocks or table clusters are needed (as QEMU computes it).
    const std::uint64_t per_table_cluster = cluster_size / 8;
    const std::uint64_t per_block = cluster_size * 8 / (1u << refcount_order);
    std::uint64_t table = 0, blocks = 0, n = 0, last;
    do {
        last = n;
        blocks = (clusters + table + blocks + per_block - 1) / per_block;
        table = (blocks + per_table_cluster - 1) / per_table_cluster;
        n = clusters + blocks + table;
    } while (n != last);
    return (blocks + table) * cluster_size;
}

std::uint64_t round_up(std::uint64_t value, std::uint64_t to) {
    return (value + to - 1) / to * to;
}

std::uint64_t prealloc_size(std::uint64_t size, std::uint64_t cluster_size, unsigned refcount_order,
                            bool extended) {
    const std::uint64_t aligned = round_up(size, cluster_size);
    const std::uint64_t entry = extended ? 16 : 8;
    std::uint64_t meta = cluster_size; // header
    const std::uint64_t l2_entries = round_up(aligned / cluster_size, cluster_size / entry);
    meta += l2_entries * entry;
    const std::uint64_t l1_entries = round_up(l2_entries * entry / cluster_size, cluster_size / 8);
    meta += l1_entries * 8;
    meta += refcount_metadata_size((meta + aligned) / cluster_size, cluster_size, refcount_order);
    return meta + aligned;
}

// What the source's persistent bitmaps take in an image of `cluster`-byte clusters, each fully allocated,
// with its table and its directory entry (QEMU's estimate).
std::uint64_t bitmaps_size(const ImageInfo& source, std::uint64_t cluster) {
    std::uint64_t total = 0, directory = 0;
    for (const auto& b : source.bitmaps) {
        const std::uint64_t bits = (source.virtual_size + b.granularity - 1) / b.granularity;
        const std::uint64_t clusters = ((bits + 7) / 8 + cluster - 1) / cluster;
        total += clusters * cluster + round_up(clusters * 8, cluster);
        directory += round_up(24 + b.name.size(), 8);
    }
    return total + round_up(directory, cluster);
}

} // namespace

MeasureResult measure_image(const CreateOptions& target, Image* source, std::uint64_t size) {
    MeasureResult r;
    if (target.format == ImageFormat::Raw) {
        r.required = source ? source->virtual_size() : round_up(size, 512);
        r.fully_allocated = r.required;
        return r;
    }
    const std::uint64_t cluster = target.cluster_size;
    std::uint64_t virtual_size = round_up(source ? source->virtual_size() : size, cluster);
    std::uint64_t required = 0;
    if (source && target.backing_file) {
        required = virtual_size; // nothing is known about what the new backing file shares
    } else if (source) {
        const std::uint64_t end = source->virtual_size();
        for (std::uint64_t offset = 0; offset < end;) {
            ChainStatus s = chain_block_status(*source, offset, end - offset);
            std::uint64_t n = s.length;
            if (!s.zero && s.data && s.present) {
                n = round_up(offset + n, cluster) - offset;
                required += offset % cluster + n;
            }
            offset += n;
        }
    }
    r.fully_allocated =
        prealloc_size(virtual_size, cluster, static_cast<unsigned>(std::countr_zero(target.refcount_bits)),
                      target.extended_l2);
    if (target.preallocation == Preallocation::Falloc || target.preallocation == Preallocation::Full)
        required = virtual_size; // every data cluster will be allocated
    r.required = r.fully_allocated - virtual_size + required;
    // Shown when both sides could hold persistent bitmaps, as qemu-img does.
    if (target.version >= 3 && source && source->format() == ImageFormat::Qcow2) {
        const ImageInfo info = source->info();
        if (info.compat != "0.10")
            r.bitmaps = bitmaps_size(info, cluster);
    }
    return r;
}

} // namespace vmstor::qcow2
