// Runs the volumes' snapshot schedules: at each time the calendar names, a job `scheduled-snapshot`
// (started by uid 0) takes a snapshot named "auto-<UTC time>" and prunes, by the schedule's retention
// policy, the snapshots the schedule itself made. Runs missed while vmstord was down run once at start.
// Where a systemd manager is on the bus, each schedule is a transient systemd timer that calls
// Volume.RunSchedule; elsewhere (a private bus, a container without systemd) vmstord's own timer does the
// same, and the log says which at start.
#pragma once

#include "storage/schedules.hpp"
#include "storage/service.hpp"
#include "systemd_timers.hpp"

#include <cstdint>
#include <map>
#include <memory>

namespace vmstor::daemon {

class JobRegistry;

class ScheduleRunner {
  public:
    ScheduleRunner(sdbus::IConnection& bus, storage::StorageService& service, JobRegistry& jobs,
                   storage::Scheduler& scheduler);
    ScheduleRunner(const ScheduleRunner&) = delete;
    ScheduleRunner& operator=(const ScheduleRunner&) = delete;

    /// @brief Arms every schedule on record; from then on follows changes of the schedules.
    void start();

    using VolumeKey = storage::ScheduleBook::VolumeKey;
    /// @brief Starts the volume's scheduled snapshot now, as a job; returns its path. Throws NotFound
    /// (no snapshot schedule), NotSupported (not qcow2), Busy (a guest or a job holds the image).
    std::string run_now(const VolumeKey& volume);

  private:
    /// @brief Works out the volume's next snapshot run and waits for it (a missed one runs at once).
    void arm(const VolumeKey& volume);
    /// @brief Wakes at least once a minute to compare the wall clock with the next run, so that a clock
    /// change or a suspended host delays a run by a minute at most.
    void wait(const VolumeKey& volume, std::uint64_t generation);
    /// @brief A run the calendar asked for: run_now, or a skip that says why.
    void run_due(const VolumeKey& volume);
    /// @brief Makes the volume's systemd timer match its schedule.
    void follow_with_systemd(const VolumeKey& volume, const storage::VolumeSchedule& schedule);
    /// @brief Records a run that made nothing (and why, in the log), then arms the next.
    void skip(const VolumeKey& volume, std::int64_t now, const std::string& why);

    sdbus::IConnection& bus_;
    storage::StorageService& service_;
    JobRegistry& jobs_;
    storage::Scheduler& scheduler_;
    struct Armed {
        std::uint64_t generation = 0; ///< a timer of an older generation does nothing when it fires
        std::int64_t next_run = 0;    ///< seconds since the epoch; 0: nothing to run
    };
    std::map<VolumeKey, Armed> armed_;
    std::unique_ptr<SystemdTimers> systemd_;                          ///< nullptr: vmstord's own timer
    std::map<VolumeKey, std::pair<std::string, std::string>> timers_; ///< unit name, calendar
    std::uint64_t timers_made_ = 0;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

} // namespace vmstor::daemon
