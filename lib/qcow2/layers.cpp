// commit and rebase: moving data between the layers of a backing chain (qemu-img commit / rebase).
#include "aligned_buffer.hpp"
#include "common/error.hpp"
#include "operations.hpp"
#include "qcow2_image.hpp"

#include <algorithm>
#include <cstring>
#include <fmt/format.h>

namespace vmstor::qcow2 {

namespace {

constexpr std::uint64_t chunk_size = 2ull << 20;

void check_cancel(const std::atomic<bool>* cancel, const char* what) {
    if (cancel && cancel->load())
        throw Error(ErrorCode::Cancelled, fmt::format("{} was cancelled", what));
}

void report(const ProgressCallback& progress, std::uint64_t done, std::uint64_t total) {
    if (progress && total > 0)
        progress(100.0 * static_cast<double>(done) / static_cast<double>(total));
}

bool all_zero(std::span<const std::byte> data) {
    // Zero at the start and equal to itself shifted by one byte: zero throughout (memcmp is vectorised).
    return data.empty() ||
           (data[0] == std::byte{0} && std::memcmp(data.data(), data.data() + 1, data.size() - 1) == 0);
}

Qcow2Image& as_qcow2(Image& image, const char* operation) {
    if (image.format() != ImageFormat::Qcow2)
        throw Error(ErrorCode::NotSupported,
                    fmt::format("'{}': {} needs a qcow2 image (a {} image has no backing file)", image.path(),
                                operation, format_name(image.format())));
    return static_cast<Qcow2Image&>(image);
}

} // namespace

void Qcow2Image::set_backing_file(const std::string& name, const std::optional<std::string>& format,
                                  bool open_backing_file) {
    if (!writable_)
        throw Error(ErrorCode::InvalidArgument, fmt::format("'{}' is opened read-only", file_.path()));
    Header updated = header_;
    updated.backing_file = name;
    updated.backing_format = name.empty() ? std::nullopt : format;
    std::vector<std::byte> encoded = encode_header(updated); // throws if it does not fit
    std::unique_ptr<Image> new_backing;
    if (open_backing_file && !name.empty()) {
        OpenOptions o;
        o.format = format ? std::optional(parse_format(*format)) : std::nullopt;
        o.require_backing_format = options_.require_backing_format;
        // Read from here on only: whoever else holds it was checked when the operation opened it
        // (qemu-img does not open it again at all).
        if (options_.locking)
            o.locking = LockOptions{.force_share = true};
        new_backing = Image::open(resolve_backing_path(file_.path(), name), o);
    }
    flush();
    header_ = updated;
    // The whole first cluster in one write, as QEMU updates the header, then synced.
    encoded.resize(header_.cluster_size(), std::byte{0});
    write_metadata(Metadata::Header, 0, encoded);
    file_.sync();
    backing_ = std::move(new_backing);
}

void Qcow2Image::make_empty() {
    check_data_access();
    begin_write();
    const std::uint64_t cluster = header_.cluster_size();
    const std::uint64_t clusters = (header_.size + cluster - 1) / cluster;
    const std::uint64_t per_table = header_.l2_entries();
    for (std::uint64_t gc = 0; gc < clusters; ++gc) {
        if (gc % per_table == 0 && (gc / per_table >= l1_.size() || l1_[gc / per_table] == 0)) {
            gc += per_table - 1; // no L2 table: nothing allocated there
            continue;
        }
        L2Entry e = get_l2_entry(gc);
        if (e.entry == 0 && e.bitmap == 0)
            continue;
        prepare_l2_table(gc);
        e = get_l2_entry(gc);
        set_l2_entry(gc, L2Entry{});
        release_host_cluster(e, gc);
    }
    flush();
}

void commit_image(Image& overlay, const CommitOptions& options) {
    Qcow2Image& top = as_qcow2(overlay, "commit");
    const Header& header = top.header();
    if (header.backing_file.empty())
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("Image '{}' does not have a backing file", top.path()));
    if (!header.backing_format)
        throw Error(
            ErrorCode::NotSupported,
            fmt::format("'{}': the backing file '{}' has no recorded format; refusing to commit into it",
                        top.path(), header.backing_file));
    OpenOptions base_options;
    base_options.format = parse_format(*header.backing_format);
    base_options.writable = true;
    // A conflict here is qemu-img's own message: QEMU reopens the open backing file for writing.
    base_options.locking = top.locking();
    if (base_options.locking)
        base_options.locking->resize = false;
    auto base = Image::open(resolve_backing_path(top.path(), header.backing_file), base_options);

    const std::uint64_t size = top.virtual_size();
    // As QEMU's commit job: a smaller base grows to the overlay's size.
    if (base->virtual_size() < size)
        base->resize(size, false);

    AlignedBuffer buffer;
    for (std::uint64_t offset = 0; offset < size;) {
        check_cancel(options.cancel, "commit");
        const BlockStatus st = top.block_status(offset, std::min(chunk_size, size - offset));
        if (st.allocated && st.zero) {
            base->write_zeroes(offset, st.length);
        } else if (st.allocated) {
            buffer.resize(st.length);
            top.read(offset, buffer);
            base->write(offset, buffer);
        }
        offset += st.length;
        report(options.progress, offset, size);
    }
    base->flush();
    base.reset();
    // Only once the base holds the data on disk may the overlay let go of it.
    if (!options.empty_overlay)
        return; // reads still find the committed ranges in the overlay, never in the base
    top.make_empty();
    // The overlay's own view of the backing file caches tables from before the commit: open it again
    // (the header is rewritten unchanged), or reads and copy-on-write would find the old backing data.
    if (top.backing())
        top.set_backing_file(header.backing_file, header.backing_format, true);
}

namespace {

/// @brief Writes into `image` every cluster of [offset, offset+length) whose old content (read through
/// the image, which does not allocate the range) differs from the new backing's.
void preserve_range(Image& image, Image* new_backing, std::uint64_t offset, std::uint64_t length,
                    AlignedBuffer& old_data, AlignedBuffer& new_data) {
    old_data.resize(length);
    new_data.assign(length, std::byte{0});
    image.read(offset, old_data);
    if (new_backing && offset < new_backing->virtual_size()) {
        const std::uint64_t n = std::min(length, new_backing->virtual_size() - offset);
        new_backing->read(offset, std::span(new_data).first(n));
    }
    // Each cluster is kept (old data), zeroed or left alone; runs of the same action are written at once.
    enum class Action { Keep, Zero, Skip };
    const std::uint64_t cluster = image.cluster_size();
    auto action_at = [&](std::uint64_t pos, std::uint64_t end) {
        const auto old_part = std::span(old_data).subspan(pos - offset, end - pos);
        const auto new_part = std::span(new_data).subspan(pos - offset, end - pos);
        if (std::memcmp(old_part.data(), new_part.data(), old_part.size()) == 0)
            return Action::Skip;
        return all_zero(old_part) ? Action::Zero : Action::Keep;
    };
    std::uint64_t run_start = offset;
    Action run_action = Action::Skip;
    auto finish_run = [&](std::uint64_t run_end) {
        if (run_action == Action::Zero)
            image.write_zeroes(run_start, run_end - run_start);
        else if (run_action == Action::Keep)
            image.write(run_start, std::span(old_data).subspan(run_start - offset, run_end - run_start));
    };
    for (std::uint64_t pos = offset; pos < offset + length;) {
        const std::uint64_t end = std::min(offset + length, (pos / cluster + 1) * cluster);
        const Action action = action_at(pos, end);
        if (action != run_action) {
            finish_run(pos);
            run_start = pos;
            run_action = action;
        }
        pos = end;
    }
    finish_run(offset + length);
}

} // namespace

void rebase_image(Image& image, const RebaseOptions& options) {
    Qcow2Image& top = as_qcow2(image, "rebase");
    // As qemu-img 7.2: a backing file is only ever recorded with its format.
    if (!options.backing_file.empty() && !options.backing_format)
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("Could not change the backing file to '{}': backing format must be specified",
                                options.backing_file));
    std::unique_ptr<Image> new_backing;
    if (!options.backing_file.empty() && !options.unsafe) {
        OpenOptions o;
        o.format = parse_format(*options.backing_format);
        o.locking = top.locking();
        if (o.locking)
            *o.locking = LockOptions{.force_share = options.force_share_backing};
        try {
            new_backing = Image::open(resolve_backing_path(top.path(), options.backing_file), o);
        } catch (const ImageLockConflict& e) {
            throw ImageLockConflict(
                fmt::format("Could not open new backing file '{}': {}", options.backing_file, e.what()));
        }
    }
    if (!options.unsafe) {
        if (!top.header().backing_file.empty() && !top.backing())
            throw Error(ErrorCode::InvalidArgument,
                        fmt::format("'{}': the old backing file must be open for a safe rebase", top.path()));
        const std::uint64_t size = top.virtual_size();
        AlignedBuffer old_data, new_data;
        for (std::uint64_t offset = 0; offset < size;) {
            check_cancel(options.cancel, "rebase");
            const BlockStatus st = top.block_status(offset, std::min(chunk_size, size - offset));
            if (!st.allocated)
                preserve_range(top, new_backing.get(), offset, st.length, old_data, new_data);
            offset += st.length;
            report(options.progress, offset, size);
        }
    }
    new_backing.reset();
    top.set_backing_file(options.backing_file, options.backing_format, !options.unsafe);
}

} // namespace vmstor::qcow2
