// The overlap check before every metadata write: a write that would land on other metadata marks the
// image corrupt and is refused, so a bug or a hostile image cannot make us destroy metadata.
#include "common/error.hpp"
#include "format.hpp"
#include "qcow2_image.hpp"

#include <fmt/format.h>

namespace vmstor::qcow2 {

using namespace format;

namespace {

const char* metadata_name(Metadata kind) {
    switch (kind) {
    case Metadata::Header:
        return "the header";
    case Metadata::ActiveL1:
        return "the active L1 table";
    case Metadata::ActiveL2:
        return "an active L2 table";
    case Metadata::RefcountTable:
        return "the refcount table";
    case Metadata::RefcountBlock:
        return "a refcount block";
    case Metadata::SnapshotTable:
        return "the snapshot table";
    case Metadata::SnapshotL1:
        return "a snapshot L1 table";
    case Metadata::BitmapDirectory:
        return "the bitmap directory";
    case Metadata::Data:
        return "guest data";
    }
    return "metadata";
}

} // namespace

void Qcow2Image::guard_metadata_write(Metadata kind, std::uint64_t offset, std::uint64_t length) {
    const std::uint64_t cluster = header_.cluster_size();
    auto clusters = [&](std::uint64_t bytes) {
        return (bytes + cluster - 1) / cluster * cluster;
    };
    auto check = [&](Metadata other, std::uint64_t start, std::uint64_t bytes) {
        if (other == kind || bytes == 0 || (start == 0 && other != Metadata::Header))
            return;
        if (offset < start + bytes && start < offset + length)
            mark_corrupt(fmt::format("a write of {} at {:#x} ({} bytes) would overlap {} at {:#x}",
                                     metadata_name(kind), offset, length, metadata_name(other), start));
    };
    check(Metadata::Header, 0, cluster);
    check(Metadata::ActiveL1, header_.l1_table_offset, clusters(std::uint64_t{header_.l1_size} * 8));
    check(Metadata::RefcountTable, header_.refcount_table_offset,
          std::uint64_t{header_.refcount_table_clusters} * cluster);
    check(Metadata::SnapshotTable, header_.snapshots_offset, clusters(snapshot_table_bytes_));
    if (header_.bitmaps)
        check(Metadata::BitmapDirectory, header_.bitmaps->directory_offset,
              clusters(header_.bitmaps->directory_size));
    for (const auto& s : snapshots_)
        check(Metadata::SnapshotL1, s.l1_table_offset, clusters(std::uint64_t{s.l1_size} * 8));
    if (kind != Metadata::ActiveL2)
        for (std::uint64_t e : l1_)
            check(Metadata::ActiveL2, e & l1e_offset_mask, cluster);
    if (kind != Metadata::RefcountBlock)
        for (std::size_t i = 0; i < refcount_table_in_use_; ++i)
            check(Metadata::RefcountBlock, refcount_table_[i] & refcount_table_offset_mask, cluster);
}

void Qcow2Image::write_metadata(Metadata kind, std::uint64_t offset, std::span<const std::byte> data) {
    if (!writable_)
        throw Error(ErrorCode::InvalidArgument, fmt::format("'{}' is opened read-only", file_.path()));
    guard_metadata_write(kind, offset, data.size());
    file_.write(offset, data);
}

} // namespace vmstor::qcow2
