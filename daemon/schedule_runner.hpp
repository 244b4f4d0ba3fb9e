// Runs the volumes' snapshot schedules: at each time the calendar names, a job `scheduled-snapshot`
// (started by uid 0) takes a snapshot named "auto-<UTC time>" and prunes, by the schedule's retention
// policy, the snapshots the schedule itself made. Runs missed while vmstord was down run once at start.
// Timers are vmstord's own (systemd transient timers are not used yet); the log says so at start.
#pragma once

#include "storage/schedules.hpp"
#include "storage/service.hpp"

#include <cstdint>
#include <map>
#include <memory>

namespace vmstor::daemon {

class JobRegistry;

class ScheduleRunner {
  public:
    ScheduleRunner(storage::StorageService& service, JobRegistry& jobs, storage::Scheduler& scheduler);
    ScheduleRunner(const ScheduleRunner&) = delete;
    ScheduleRunner& operator=(const ScheduleRunner&) = delete;

    /// @brief Arms every schedule on record; from then on follows changes of the schedules.
    void start();

  private:
    using VolumeKey = storage::ScheduleBook::VolumeKey;

    /// @brief Works out the volume's next snapshot run and waits for it (a missed one runs at once).
    void arm(const VolumeKey& volume);
    /// @brief Wakes at least once a minute to compare the wall clock with the next run, so that a clock
    /// change or a suspended host delays a run by a minute at most.
    void wait(const VolumeKey& volume, std::uint64_t generation);
    void run_snapshot(const VolumeKey& volume);
    /// @brief Records a run that made nothing (and why, in the log), then arms the next.
    void skip(const VolumeKey& volume, std::int64_t now, const std::string& why);

    storage::StorageService& service_;
    JobRegistry& jobs_;
    storage::Scheduler& scheduler_;
    struct Armed {
        std::uint64_t generation = 0; ///< a timer of an older generation does nothing when it fires
        std::int64_t next_run = 0;    ///< seconds since the epoch; 0: nothing to run
    };
    std::map<VolumeKey, Armed> armed_;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

} // namespace vmstor::daemon
