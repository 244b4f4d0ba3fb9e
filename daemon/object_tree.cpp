#include "object_tree.hpp"

#include "object_paths.hpp"

#include <spdlog/spdlog.h>

namespace vmstor::daemon {

ObjectTree::ObjectTree(sdbus::IConnection& bus, storage::Scheduler& scheduler, storage::WorkerPool& workers)
    : bus_(bus), scheduler_(scheduler), authorizer_(bus), jobs_(bus, scheduler, workers, authorizer_),
      replies_(scheduler), volume_bus_(bus) {}

ObjectTree::~ObjectTree() {
    snapshots_.clear();
    volumes_.clear();
    pools_.clear();
    flush_graveyard();
}

void ObjectTree::attach(storage::StorageService& service) {
    service_ = &service;
    manager_ = std::make_unique<ManagerObject>(bus_, service, jobs_, authorizer_);
    schedules_ = std::make_unique<ScheduleRunner>(bus_, service, jobs_, scheduler_);
    schedules_->start();
}

void ObjectTree::schedule_flush() {
    if (std::exchange(flush_scheduled_, true))
        return;
    scheduler_.post([this] { flush_graveyard(); });
}

void ObjectTree::flush_graveyard() {
    flush_scheduled_ = false;
    dead_snapshots_.clear();
    dead_volumes_.clear();
    dead_pools_.clear();
}

void ObjectTree::pool_added(const storage::PoolState& pool) {
    // A pool removed and re-added before the graveyard was flushed must not be registered twice.
    dead_pools_.erase(pool.name);
    spdlog::debug("pool '{}' appeared", pool.name);
    pools_[pool.name] =
        std::make_unique<PoolObject>(bus_, volume_bus_.raw(), *service_, jobs_, authorizer_, pool);
}

void ObjectTree::pool_changed(const storage::PoolState& before, const storage::PoolState& after) {
    if (auto it = pools_.find(after.name); it != pools_.end())
        it->second->changed(before, after);
}

void ObjectTree::pool_removed(const storage::PoolState& pool) {
    spdlog::debug("pool '{}' went away", pool.name);
    if (auto it = pools_.find(pool.name); it != pools_.end()) {
        dead_pools_.emplace(pool.name, std::move(it->second));
        pools_.erase(it);
        schedule_flush();
    }
}

void ObjectTree::volume_added(const storage::VolumeState& volume) {
    dead_volumes_.erase({volume.pool, volume.name});
    volumes_[{volume.pool, volume.name}] = std::make_unique<VolumeObject>(
        volume_bus_, *service_, jobs_, authorizer_, replies_, *schedules_, volume);
    sync_snapshots(volume);
}

void ObjectTree::volume_changed(const storage::VolumeState& before, const storage::VolumeState& after) {
    if (auto it = volumes_.find({after.pool, after.name}); it != volumes_.end())
        it->second->changed(before, after);
    if (before.snapshots != after.snapshots || before.path != after.path)
        sync_snapshots(after);
}

void ObjectTree::sync_snapshots(const storage::VolumeState& volume) {
    const std::string prefix = volume_path(volume.pool, volume.name) + "/snapshot/";
    std::vector<std::string> paths = snapshot_paths(volume);
    std::map<std::string, const storage::SnapshotState*> wanted;
    for (std::size_t i = 0; i < paths.size(); ++i)
        wanted[paths[i]] = &volume.snapshots[i];
    for (auto it = snapshots_.lower_bound(prefix); it != snapshots_.end() && it->first.starts_with(prefix);) {
        auto keep = wanted.find(it->first);
        if (keep != wanted.end() && it->second->state() == *keep->second) {
            wanted.erase(keep); // already served as it is
            ++it;
            continue;
        }
        dead_snapshots_.emplace(it->first, std::move(it->second));
        it = snapshots_.erase(it);
        schedule_flush();
    }
    for (const auto& [path, snapshot] : wanted) {
        dead_snapshots_.erase(path); // a path is registered once
        snapshots_[path] =
            std::make_unique<SnapshotObject>(bus_, path, *service_, jobs_, authorizer_, volume, *snapshot);
    }
    volume_bus_.set_has_children(volume_path(volume.pool, volume.name), !paths.empty());
}

void ObjectTree::bury_snapshots_of(const storage::VolumeState& volume) {
    const std::string prefix = volume_path(volume.pool, volume.name) + "/snapshot/";
    for (auto it = snapshots_.lower_bound(prefix); it != snapshots_.end() && it->first.starts_with(prefix);) {
        dead_snapshots_.emplace(it->first, std::move(it->second));
        it = snapshots_.erase(it);
        schedule_flush();
    }
}

void ObjectTree::volume_removed(const storage::VolumeState& volume) {
    bury_snapshots_of(volume);
    if (auto it = volumes_.find({volume.pool, volume.name}); it != volumes_.end()) {
        dead_volumes_.emplace(it->first, std::move(it->second));
        volumes_.erase(it);
        schedule_flush();
    }
}

void ObjectTree::connection_changed(bool connected) {
    spdlog::info("libvirt connection {}", connected ? "up" : "down");
    if (manager_)
        manager_->connection_changed();
}

void ObjectTree::fill_level_crossed(const storage::PoolState& pool, storage::FillLevel level, double used) {
    spdlog::info("pool '{}' is now at level {} ({:.1f} % used)", pool.name, storage::fill_level_name(level),
                 used * 100);
    if (auto it = pools_.find(pool.name); it != pools_.end())
        it->second->threshold_crossed(level, used);
}

} // namespace vmstor::daemon
