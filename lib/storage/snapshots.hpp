// Internal snapshots of qcow2 volumes, on the engine: read for the model, changed under QEMU's locks.
#pragma once

#include "model.hpp"
#include "volume_file.hpp"

#include <string>
#include <vector>

namespace vmstor::storage {

/// @brief The snapshots of the volume's image; empty for a format other than qcow2 or an image that
/// cannot be read (the volume's other properties still show).
std::vector<SnapshotState> read_snapshots(const VolumeImage& volume, std::uint64_t capacity);

/// @brief qemu-img snapshot -c, under QEMU's write lock (Busy while another process writes the image).
void create_snapshot_in(const VolumeImage& volume, const std::string& name);
/// @brief qemu-img snapshot -a, by the snapshot's id.
void revert_to_snapshot(const VolumeImage& volume, const std::string& id);
/// @brief qemu-img snapshot -d, by the snapshot's id.
void delete_snapshot_in(const VolumeImage& volume, const std::string& id);

} // namespace vmstor::storage
