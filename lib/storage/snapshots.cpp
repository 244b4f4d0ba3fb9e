#include "snapshots.hpp"

#include "common/error.hpp"
#include "image_lock.hpp"
#include "qcow2/file.hpp"
#include "qcow2/header.hpp"
#include "qcow2/image.hpp"
#include "qcow2/operations.hpp"
#include "qcow2/snapshot_table.hpp"

#include <spdlog/spdlog.h>

namespace vmstor::storage {

namespace {

std::unique_ptr<qcow2::Image> open_qcow2(const std::string& path, bool writable) {
    qcow2::OpenOptions options;
    options.format = qcow2::ImageFormat::Qcow2;
    options.writable = writable;
    options.open_backing = false; // snapshots live in the image itself
    return qcow2::Image::open(path, options);
}

} // namespace

std::vector<SnapshotState> read_snapshots(const std::string& path, const std::string& format,
                                          std::uint64_t capacity) {
    std::vector<SnapshotState> out;
    if (format != "qcow2" || path.empty())
        return out;
    try {
        // The header and the snapshot table only: this runs for every qcow2 volume the model reads.
        qcow2::File file(path, qcow2::File::Mode::ReadOnly);
        std::uint64_t table_bytes = 0;
        for (const qcow2::Snapshot& snapshot :
             qcow2::read_snapshot_table(file, qcow2::read_header(file), table_bytes)) {
            const qcow2::SnapshotInfo& info = snapshot.info;
            SnapshotState state;
            state.id = info.id;
            state.name = info.name;
            state.created_usec = std::uint64_t{info.date_sec} * 1'000'000 + info.date_nsec / 1000;
            state.vm_state_size = info.vm_state_size;
            state.virtual_size = info.disk_size.value_or(capacity);
            out.push_back(std::move(state));
        }
    } catch (const vmstor::Error& e) {
        spdlog::debug("cannot read the snapshots of '{}': {}", path, e.what());
    }
    return out;
}

void create_snapshot_in(const std::string& path, const std::string& name) {
    ImageWriteLock lock(path);
    auto image = open_qcow2(path, true);
    qcow2::create_snapshot(*image, name);
    image->flush();
}

void revert_to_snapshot(const std::string& path, const std::string& id) {
    ImageWriteLock lock(path);
    auto image = open_qcow2(path, true);
    qcow2::apply_snapshot(*image, id);
    image->flush();
}

void delete_snapshot_in(const std::string& path, const std::string& id) {
    ImageWriteLock lock(path);
    auto image = open_qcow2(path, true);
    qcow2::delete_snapshot(*image, id);
    image->flush();
}

} // namespace vmstor::storage
