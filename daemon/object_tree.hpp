// Keeps one D-Bus object per pool and volume of the model, and turns model changes into InterfacesAdded,
// InterfacesRemoved, PropertiesChanged and ThresholdCrossed.
#pragma once

#include "authorizer.hpp"
#include "job_registry.hpp"
#include "manager_object.hpp"
#include "pool_object.hpp"
#include "reply_workers.hpp"
#include "schedule_runner.hpp"
#include "snapshot_object.hpp"
#include "volume_bus.hpp"
#include "volume_object.hpp"

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace vmstor::daemon {

class ObjectTree final : public storage::Observer {
  public:
    ObjectTree(sdbus::IConnection& bus, storage::Scheduler& scheduler, storage::WorkerPool& workers);
    ~ObjectTree() override;

    /// @brief Creates the root object; the service must outlive the tree.
    void attach(storage::StorageService& service);

    void pool_added(const storage::PoolState& pool) override;
    void pool_changed(const storage::PoolState& before, const storage::PoolState& after) override;
    void pool_removed(const storage::PoolState& pool) override;
    void volume_added(const storage::VolumeState& volume) override;
    void volume_changed(const storage::VolumeState& before, const storage::VolumeState& after) override;
    void volume_removed(const storage::VolumeState& volume) override;
    void connection_changed(bool connected) override;
    void fill_level_crossed(const storage::PoolState& pool, storage::FillLevel level, double used) override;

  private:
    /// @brief Objects are destroyed from the main loop, never inside a handler of their own (a pool that
    /// Undefine removes, a volume that Delete removes).
    void schedule_flush();
    void flush_graveyard();
    /// @brief Makes the snapshot objects under `volume` match its snapshot list.
    void sync_snapshots(const storage::VolumeState& volume);
    void bury_snapshots_of(const storage::VolumeState& volume);

    sdbus::IConnection& bus_;
    storage::Scheduler& scheduler_;
    storage::StorageService* service_ = nullptr;
    Authorizer authorizer_;
    JobRegistry jobs_;
    ReplyWorkers replies_;
    VolumeBus volume_bus_; ///< declared before the volumes, which unregister from it when destroyed
    std::unique_ptr<ManagerObject> manager_;
    std::unique_ptr<ScheduleRunner> schedules_;
    std::map<std::string, std::unique_ptr<PoolObject>> pools_;
    std::map<std::pair<std::string, std::string>, std::unique_ptr<VolumeObject>> volumes_;
    std::multimap<std::string, std::unique_ptr<PoolObject>> dead_pools_;
    std::multimap<std::pair<std::string, std::string>, std::unique_ptr<VolumeObject>> dead_volumes_;
    std::map<std::string, std::unique_ptr<SnapshotObject>> snapshots_; ///< by object path
    std::multimap<std::string, std::unique_ptr<SnapshotObject>> dead_snapshots_;
    bool flush_scheduled_ = false;
};

} // namespace vmstor::daemon
