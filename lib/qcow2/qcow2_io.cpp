// Guest reads and writes: mapping extents, copy-on-write, subclusters, zeroes, discards.
#include "common/error.hpp"
#include "format.hpp"
#include "qcow2_image.hpp"

#include <cstring>
#include <fmt/format.h>

namespace vmstor::qcow2 {

using namespace format;

void Qcow2Image::check_data_access() const {
    if (header_.incompatible_features & incompat_data_file)
        throw Error(
            ErrorCode::NotSupported,
            fmt::format("'{}' uses an unsupported incompatible feature: external data file", file_.path()));
}

void Qcow2Image::check_range(std::uint64_t offset, std::uint64_t length) const {
    if (offset > header_.size || length > header_.size - offset)
        throw Error(ErrorCode::InvalidArgument, fmt::format("'{}': range {}+{} is beyond the virtual size {}",
                                                            file_.path(), offset, length, header_.size));
}

MappedExtent Qcow2Image::map_extent(std::uint64_t guest_offset, std::uint64_t max_length) {
    const unsigned bits = header_.cluster_bits;
    const std::uint64_t cluster = header_.cluster_size();
    const bool extended = header_.extended_l2();
    const std::uint64_t unit = extended ? cluster / subclusters_per_cluster : cluster;
    const std::uint64_t l2_entries = header_.l2_entries();

    std::uint64_t gc = guest_offset >> bits;
    const std::uint64_t l1_index = gc / l2_entries;
    if (l1_index >= l1_.size() || (l1_[l1_index] & l1e_offset_mask) == 0) {
        // No L2 table: the whole range it would map is unallocated.
        MappedExtent m;
        const std::uint64_t table_end = (l1_index + 1) * l2_entries * cluster;
        m.length = std::min(table_end, guest_offset + max_length) - guest_offset;
        return m;
    }
    L2Entry e = get_l2_entry(gc);
    unsigned sc = static_cast<unsigned>((guest_offset & (cluster - 1)) / unit);
    MappedExtent m;
    m.entry = e;
    m.kind = kind_of(e, sc, gc);
    const std::uint64_t base = e.entry & l2e_offset_mask;
    if (m.kind == ClusterKind::Normal || m.kind == ClusterKind::ZeroAllocated ||
        (m.kind == ClusterKind::Unallocated && base != 0 && !(e.entry & oflag_compressed)))
        m.host = base + (guest_offset & (cluster - 1));
    std::uint64_t end = (guest_offset / unit + 1) * unit;
    if (m.kind == ClusterKind::Compressed)
        end = (gc + 1) << bits;
    const std::uint64_t limit = guest_offset + max_length;
    // Extend over following units of the same kind (and contiguous host offsets), within one L2 table.
    while (end < limit && m.kind != ClusterKind::Compressed) {
        std::uint64_t next_gc = end >> bits;
        if (next_gc != gc) {
            if (next_gc / l2_entries != gc / l2_entries)
                break;
            gc = next_gc;
            e = get_l2_entry(gc);
        }
        sc = static_cast<unsigned>((end & (cluster - 1)) / unit);
        ClusterKind k = kind_of(e, sc, gc);
        if (k != m.kind)
            break;
        const std::uint64_t host = e.entry & l2e_offset_mask;
        if (m.host != 0 || host != 0) {
            if (m.host == 0 || host + (end & (cluster - 1)) != m.host + (end - guest_offset))
                break;
        }
        end += unit;
    }
    m.length = std::min(end, limit) - guest_offset;
    return m;
}

void Qcow2Image::read_from_backing(std::uint64_t guest_offset, std::span<std::byte> out) {
    std::size_t from_backing = 0;
    if (backing_ && guest_offset < backing_->virtual_size()) {
        from_backing = static_cast<std::size_t>(
            std::min<std::uint64_t>(out.size(), backing_->virtual_size() - guest_offset));
        backing_->read(guest_offset, out.first(from_backing));
    }
    std::memset(out.data() + from_backing, 0, out.size() - from_backing);
}

void Qcow2Image::read_compressed(const L2Entry& e, std::uint64_t guest_cluster, std::uint64_t in_cluster,
                                 std::span<std::byte> out) {
    const unsigned bits = header_.cluster_bits;
    const std::uint64_t cluster = header_.cluster_size();
    if (decompressed_.empty() || decompressed_entry_ != e.entry) {
        const unsigned x = 62 - (bits - 8);
        const std::uint64_t host = e.entry & ((1ull << x) - 1);
        const std::uint64_t sectors = ((e.entry & ~oflag_compressed & ~oflag_copied) >> x) + 1;
        const std::uint64_t bytes = sectors * sector_size - (host & (sector_size - 1));
        if (host >= max_host_offset || host == 0)
            throw Error(ErrorCode::Corrupt,
                        fmt::format("'{}': compressed cluster of guest offset {:#x} has host "
                                    "offset {:#x}",
                                    file_.path(), guest_cluster << bits, host));
        std::vector<std::byte> in(bytes);
        file_.read_or_zero(host, in);
        decompressed_.resize(cluster);
        decompressed_entry_ = 0;
        if (!decompress_cluster(compression_, in, decompressed_))
            throw Error(ErrorCode::Corrupt,
                        fmt::format("'{}': compressed cluster of guest offset {:#x} cannot "
                                    "be decompressed",
                                    file_.path(), guest_cluster << bits));
        decompressed_entry_ = e.entry;
    }
    std::memcpy(out.data(), decompressed_.data() + in_cluster, out.size());
}

void Qcow2Image::read_cluster_range(std::uint64_t guest_offset, std::span<std::byte> out) {
    std::size_t done = 0;
    while (done < out.size()) {
        const std::uint64_t offset = guest_offset + done;
        MappedExtent m = map_extent(offset, out.size() - done);
        auto piece = out.subspan(done, static_cast<std::size_t>(m.length));
        switch (m.kind) {
        case ClusterKind::Normal:
            file_.read_or_zero(m.host, piece);
            break;
        case ClusterKind::ZeroPlain:
        case ClusterKind::ZeroAllocated:
            std::memset(piece.data(), 0, piece.size());
            break;
        case ClusterKind::Unallocated:
            read_from_backing(offset, piece);
            break;
        case ClusterKind::Compressed:
            read_compressed(m.entry, offset >> header_.cluster_bits, offset & (header_.cluster_size() - 1),
                            piece);
            break;
        }
        done += piece.size();
    }
}

void Qcow2Image::read(std::uint64_t offset, std::span<std::byte> out) {
    check_range(offset, out.size());
    check_data_access();
    read_cluster_range(offset, out);
}

BlockStatus Qcow2Image::block_status(std::uint64_t offset, std::uint64_t length) {
    check_range(offset, length);
    check_data_access();
    MappedExtent m = map_extent(offset, length);
    BlockStatus s;
    s.length = m.length;
    switch (m.kind) {
    case ClusterKind::Normal:
        s.allocated = s.data = true;
        s.host_offset = m.host;
        if (metadata_preallocated())
            refine_with_file_holes(s);
        break;
    case ClusterKind::Compressed:
        s.allocated = s.data = s.compressed = true;
        break;
    case ClusterKind::ZeroAllocated:
        s.allocated = s.zero = true;
        s.host_offset = m.host;
        break;
    case ClusterKind::ZeroPlain:
        s.allocated = s.zero = true;
        break;
    case ClusterKind::Unallocated:
        if (m.host != 0)
            s.host_offset = m.host;
        break;
    }
    return s;
}

bool Qcow2Image::metadata_preallocated() {
    // As QEMU decides: many more clusters are counted than the file system really holds.
    if (!metadata_preallocation_) {
        const std::uint64_t cluster = header_.cluster_size();
        const std::uint64_t real_clusters = file_.allocated_bytes() / cluster;
        const std::uint64_t threshold = std::max(real_clusters * 10 / 9, real_clusters + 2);
        const std::uint64_t end = (file_.size() + cluster - 1) / cluster;
        std::uint64_t counted = 0;
        for (std::uint64_t c = 0; c < end && counted < threshold; ++c)
            counted += get_refcount(c) != 0;
        metadata_preallocation_ = counted >= threshold;
    }
    return *metadata_preallocation_;
}

void Qcow2Image::refine_with_file_holes(BlockStatus& s) const {
    const std::uint64_t host = *s.host_offset;
    if (host >= file_.size()) {
        s.zero = true;
        return;
    }
    const std::uint64_t data = file_.next_data(host);
    if (data > host) {
        s.zero = true;
        s.length = std::min(s.length, data - host);
    } else {
        s.length = std::min(s.length, file_.next_hole(host) - host);
    }
}

// --- writes ---

bool Qcow2Image::writable_in_place(std::uint64_t guest_cluster, const L2Entry& e) const {
    const std::size_t l1_index = static_cast<std::size_t>(guest_cluster / header_.l2_entries());
    return (l1_[l1_index] & oflag_copied) && (e.entry & oflag_copied) && !(e.entry & oflag_compressed) &&
           (e.entry & l2e_offset_mask) != 0;
}

void Qcow2Image::release_host_cluster(const L2Entry& old, std::uint64_t guest_cluster) {
    if (old.entry & oflag_compressed) {
        const unsigned x = 62 - (header_.cluster_bits - 8);
        const std::uint64_t host = old.entry & ((1ull << x) - 1);
        const std::uint64_t sectors = ((old.entry & ~oflag_compressed & ~oflag_copied) >> x) + 1;
        const std::uint64_t first = host >> header_.cluster_bits;
        const std::uint64_t last =
            ((host & ~(sector_size - 1)) + sectors * sector_size - 1) >> header_.cluster_bits;
        pending_releases_.emplace_back(first, last - first + 1);
        return;
    }
    const std::uint64_t host = old.entry & l2e_offset_mask;
    if (host == 0)
        return;
    (void)guest_cluster;
    pending_releases_.emplace_back(host >> header_.cluster_bits, 1);
}

void Qcow2Image::apply_pending_releases() {
    if (pending_releases_.empty())
        return;
    auto releases = std::move(pending_releases_);
    pending_releases_.clear();
    for (auto [first, count] : releases)
        for (std::uint64_t c = first; c < first + count; ++c)
            change_refcount(c, -1);
}

void Qcow2Image::write_subclusters(std::uint64_t gc, std::uint64_t in, std::span<const std::byte> data) {
    const std::uint64_t cluster = header_.cluster_size();
    const std::uint64_t unit = cluster / subclusters_per_cluster;
    const std::uint64_t cluster_start = gc * cluster;
    L2Entry e = get_l2_entry(gc);
    const std::uint64_t first = in / unit;
    const std::uint64_t last = (in + data.size() - 1) / unit;
    const std::uint64_t touched =
        ((last - first + 1 == 32) ? 0xffffffffull : ((1ull << (last - first + 1)) - 1)) << first;
    const std::uint64_t span_start = first * unit;
    const std::uint64_t span_end = (last + 1) * unit;
    const std::uint64_t old_host = e.entry & l2e_offset_mask;
    const bool had_data = (e.entry & oflag_compressed) || (e.bitmap & 0xffffffffull) != 0;

    if (writable_in_place(gc, e)) {
        std::vector<std::byte> buf(span_end - span_start);
        if (in > span_start)
            read_cluster_range(cluster_start + span_start, std::span(buf).first(in - span_start));
        if (in + data.size() < span_end)
            read_cluster_range(cluster_start + in + data.size(),
                               std::span(buf).subspan(in + data.size() - span_start));
        std::memcpy(buf.data() + (in - span_start), data.data(), data.size());
        file_.write(old_host + span_start, buf);
        e.bitmap = (e.bitmap | touched) & ~(touched << 32);
        set_l2_entry(gc, e);
        return;
    }
    // A new host cluster. Old data (shared or compressed) is copied whole; otherwise only the span.
    const std::uint64_t new_host = allocate_clusters(1);
    guard_metadata_write(Metadata::Data, new_host, cluster);
    L2Entry updated;
    updated.entry = new_host | oflag_copied;
    if (had_data) {
        std::vector<std::byte> buf(cluster);
        read_cluster_range(cluster_start, buf);
        std::memcpy(buf.data() + in, data.data(), data.size());
        file_.write(new_host, buf);
        const std::uint64_t allocated =
            (e.entry & oflag_compressed) ? 0xffffffffull : (e.bitmap & 0xffffffffull);
        updated.bitmap = (allocated | touched) & 0xffffffffull;
    } else {
        std::vector<std::byte> buf(span_end - span_start);
        read_cluster_range(cluster_start + span_start, buf);
        std::memcpy(buf.data() + (in - span_start), data.data(), data.size());
        file_.write(new_host + span_start, buf);
        updated.bitmap = (e.bitmap | touched) & ~(touched << 32);
    }
    set_l2_entry(gc, updated);
    if (old_host != 0 || (e.entry & oflag_compressed))
        release_host_cluster(e, gc);
}

void Qcow2Image::write_cluster(std::uint64_t gc, std::uint64_t in, std::span<const std::byte> data) {
    prepare_l2_table(gc);
    if (header_.extended_l2())
        return write_subclusters(gc, in, data);
    const std::uint64_t cluster = header_.cluster_size();
    L2Entry e = get_l2_entry(gc);
    const ClusterKind kind = kind_of(e, 0, gc);
    const std::uint64_t host = e.entry & l2e_offset_mask;
    if (kind == ClusterKind::Normal && writable_in_place(gc, e)) {
        file_.write(host + in, data);
        return;
    }
    std::vector<std::byte> buf(cluster);
    if (data.size() < cluster)
        read_cluster_range(gc * cluster, buf);
    std::memcpy(buf.data() + in, data.data(), data.size());
    if (kind == ClusterKind::ZeroAllocated && writable_in_place(gc, e)) {
        file_.write(host, buf);
        set_l2_entry(gc, {host | oflag_copied, 0});
        return;
    }
    const std::uint64_t new_host = allocate_clusters(1);
    guard_metadata_write(Metadata::Data, new_host, cluster);
    file_.write(new_host, buf);
    set_l2_entry(gc, {new_host | oflag_copied, 0});
    release_host_cluster(e, gc);
}

void Qcow2Image::write_new_clusters(std::uint64_t first, std::uint64_t count,
                                    std::span<const std::byte> data) {
    const std::uint64_t cluster = header_.cluster_size();
    for (std::uint64_t gc = first; gc < first + count; gc += header_.l2_entries() - gc % header_.l2_entries())
        prepare_l2_table(gc);
    prepare_l2_table(first + count - 1);
    const std::uint64_t host = allocate_clusters(count);
    guard_metadata_write(Metadata::Data, host, count * cluster);
    file_.write(host, data);
    const std::uint64_t all_allocated = header_.extended_l2() ? 0xffffffffull : 0;
    for (std::uint64_t i = 0; i < count; ++i) {
        L2Entry old = get_l2_entry(first + i);
        set_l2_entry(first + i, {(host + i * cluster) | oflag_copied, all_allocated});
        release_host_cluster(old, first + i);
    }
}

void Qcow2Image::write(std::uint64_t offset, std::span<const std::byte> data) {
    check_range(offset, data.size());
    check_data_access();
    begin_write();
    note_guest_write(offset, data.size());
    const unsigned bits = header_.cluster_bits;
    const std::uint64_t cluster = header_.cluster_size();
    std::size_t done = 0;
    while (done < data.size()) {
        const std::uint64_t pos = offset + done;
        const std::uint64_t gc = pos >> bits;
        const std::uint64_t in = pos & (cluster - 1);
        const std::size_t n =
            static_cast<std::size_t>(std::min<std::uint64_t>(data.size() - done, cluster - in));
        if (in == 0 && n == cluster && !writable_in_place(gc, get_l2_entry(gc))) {
            // A run of whole clusters that all need new host clusters: one allocation, one write.
            std::uint64_t count = 1;
            while (done + (count + 1) * cluster <= data.size() && count < 8192 &&
                   !writable_in_place(gc + count, get_l2_entry(gc + count)))
                ++count;
            write_new_clusters(gc, count, data.subspan(done, count * cluster));
            done += count * cluster;
            continue;
        }
        write_cluster(gc, in, data.subspan(done, n));
        done += n;
    }
}

void Qcow2Image::zero_cluster(std::uint64_t gc) {
    prepare_l2_table(gc);
    L2Entry e = get_l2_entry(gc);
    const bool keep = writable_in_place(gc, e);
    L2Entry updated;
    if (header_.extended_l2()) {
        updated.entry = keep ? e.entry : 0;
        updated.bitmap = 0xffffffffull << 32;
    } else {
        updated.entry = (keep ? e.entry : 0) | oflag_zero;
    }
    set_l2_entry(gc, updated);
    if (!keep)
        release_host_cluster(e, gc);
}

void Qcow2Image::write_zeroes(std::uint64_t offset, std::uint64_t length) {
    check_range(offset, length);
    check_data_access();
    begin_write();
    note_guest_write(offset, length);
    const std::uint64_t cluster = header_.cluster_size();
    const bool can_flag = header_.version >= 3;
    const std::vector<std::byte> zeroes(cluster);
    std::uint64_t pos = offset;
    const std::uint64_t end = offset + length;
    while (pos < end) {
        const std::uint64_t in = pos & (cluster - 1);
        const std::uint64_t n = std::min(end - pos, cluster - in);
        const bool whole = in == 0 && (n == cluster || pos + n == header_.size);
        if (whole && can_flag)
            zero_cluster(pos / cluster);
        else
            write(pos, std::span(zeroes).first(static_cast<std::size_t>(n)));
        pos += n;
    }
}

void Qcow2Image::discard(std::uint64_t offset, std::uint64_t length) {
    check_range(offset, length);
    check_data_access();
    begin_write();
    note_guest_write(offset, length);
    const std::uint64_t cluster = header_.cluster_size();
    std::uint64_t pos = (offset + cluster - 1) / cluster * cluster;
    const std::uint64_t end =
        offset + length == header_.size ? header_.size : (offset + length) / cluster * cluster;
    const bool has_backing = !header_.backing_file.empty();
    for (; pos < end; pos += cluster) {
        const std::uint64_t gc = pos / cluster;
        L2Entry e = get_l2_entry(gc);
        if (e.entry == 0 && e.bitmap == 0 && !has_backing)
            continue;
        prepare_l2_table(gc);
        e = get_l2_entry(gc);
        L2Entry updated;
        if (has_backing && header_.version >= 3) {
            if (header_.extended_l2())
                updated.bitmap = 0xffffffffull << 32;
            else
                updated.entry = oflag_zero;
        }
        set_l2_entry(gc, updated);
        release_host_cluster(e, gc);
    }
}

} // namespace vmstor::qcow2
