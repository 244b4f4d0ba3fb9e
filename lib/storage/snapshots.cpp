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

std::unique_ptr<qcow2::Image> open_qcow2(const VolumeImage& volume, bool writable) {
    qcow2::OpenOptions options;
    options.writable = writable;
    options.open_backing = false; // snapshots live in the image itself
    return open_volume_image({volume.path, "qcow2", volume.in_pool_directory}, options);
}

} // namespace

std::vector<SnapshotState> read_snapshots(const VolumeImage& volume, std::uint64_t capacity) {
    std::vector<SnapshotState> out;
    if (volume.format != "qcow2" || volume.path.empty())
        return out;
    try {
        // The header and the snapshot table only: this runs for every qcow2 volume the model reads.
        qcow2::File file = open_volume_file(volume, false);
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
        spdlog::debug("cannot read the snapshots of '{}': {}", volume.path, e.what());
    }
    return out;
}

void create_snapshot_in(const VolumeImage& volume, const std::string& name) {
    ImageWriteLock lock(volume.path);
    auto image = open_qcow2(volume, true);
    qcow2::create_snapshot(*image, name);
    image->flush();
}

void revert_to_snapshot(const VolumeImage& volume, const std::string& id) {
    ImageWriteLock lock(volume.path);
    auto image = open_qcow2(volume, true);
    qcow2::apply_snapshot(*image, id);
    image->flush();
}

void delete_snapshot_in(const VolumeImage& volume, const std::string& id) {
    ImageWriteLock lock(volume.path);
    auto image = open_qcow2(volume, true);
    qcow2::delete_snapshot(*image, id);
    image->flush();
}

} // namespace vmstor::storage
