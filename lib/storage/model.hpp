// The pool and volume model the daemon serves, and the interfaces through which it is kept current.
#pragma once

#include "virt/descriptions.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace vmstor::storage {

struct PoolState {
    std::string name;
    std::string uuid;
    std::string type;
    std::string state; ///< inactive, building, running, degraded, inaccessible
    bool active = false;
    bool persistent = false;
    bool autostart = false;
    std::uint64_t capacity = 0;
    std::uint64_t allocation = 0;
    std::uint64_t available = 0;
    /// For a pool on a mounted file system (dir, fs, netfs): the free bytes that the file system keeps
    /// back from unprivileged writers (statvfs f_bfree - f_bavail: for root, ext4's for its metadata).
    /// libvirt's `available` is f_bfree, so it never reaches 0 on a full ext4: the pool is full when
    /// `available` is down to these. Taken apart from libvirt's figures, which are as of its last
    /// refresh, as it hardly moves.
    std::uint64_t kept_back = 0;
    std::string target_path;
    virt::PoolSource source;
    double overcommit = 0; ///< sum of volume capacities / pool capacity
    bool operator==(const PoolState&) const = default;
};

/// @brief An internal snapshot of a qcow2 volume, as the image's snapshot table records it.
struct SnapshotState {
    std::string id;
    std::string name;
    std::uint64_t created_usec = 0; ///< since the epoch
    std::uint64_t vm_state_size = 0;
    std::uint64_t virtual_size = 0; ///< the disk size at the snapshot (the volume's when not recorded)
    bool operator==(const SnapshotState&) const = default;
};

struct VolumeState {
    std::string pool;
    std::string name;
    std::string key;
    std::string path;
    std::string format;
    std::uint64_t capacity = 0;
    std::uint64_t allocation = 0;
    std::uint64_t physical = 0;
    std::vector<std::pair<std::string, std::string>> backing_chain; ///< (path, format), nearest first
    bool encrypted = false;
    std::vector<std::string> used_by;     ///< libvirt domains whose disks name this volume
    bool locked = false;                  ///< open for writing by a QEMU process (QEMU's lock protocol)
    std::vector<SnapshotState> snapshots; ///< qcow2 internal snapshots, in table order
    bool operator==(const VolumeState&) const = default;
};

/// @brief Fill levels of a pool, from its allocation against its thresholds.
enum class FillLevel { Ok, Warning, Critical, Full };
std::string_view fill_level_name(FillLevel level);

struct Thresholds {
    double warning = 0.80;
    double critical = 0.95;
    bool operator==(const Thresholds&) const = default;
};
FillLevel fill_level(const PoolState& pool, const Thresholds& thresholds);

/// @brief Told of every change to the model, on the thread that drives the StorageService.
class Observer {
  public:
    virtual ~Observer() = default;
    virtual void pool_added(const PoolState& pool) = 0;
    virtual void pool_changed(const PoolState& before, const PoolState& after) = 0;
    virtual void pool_removed(const PoolState& pool) = 0;
    virtual void volume_added(const VolumeState& volume) = 0;
    virtual void volume_changed(const VolumeState& before, const VolumeState& after) = 0;
    virtual void volume_removed(const VolumeState& volume) = 0;
    virtual void connection_changed(bool connected) = 0;
    virtual void fill_level_crossed(const PoolState& pool, FillLevel level, double used) = 0;
};

/// @brief The thread that drives the StorageService: `post` may be called from any thread, `after` only
/// from the driving thread itself.
class Scheduler {
  public:
    virtual ~Scheduler() = default;
    virtual void post(std::function<void()> task) = 0;
    virtual void after(std::chrono::milliseconds delay, std::function<void()> task) = 0;
};

} // namespace vmstor::storage
