#include "schedule_runner.hpp"

#include "error_boundary.hpp"
#include "job_registry.hpp"
#include "object_paths.hpp"
#include "storage/calendar.hpp"
#include "storage/snapshots.hpp"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace vmstor::daemon {

namespace {

constexpr std::int64_t longest_sleep_seconds = 60;
constexpr std::int64_t absent_volume_retry_seconds = 5; // at start, until libvirt has listed the pools

std::int64_t wall_clock_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

/// What a scheduled snapshot job did, written by the worker, read on the main loop once it ended.
struct SnapshotOutcome {
    bool made = false;
    std::vector<std::string> pruned;
};

constexpr const char* timer_prefix = "vmstor-snapshot-";

} // namespace

ScheduleRunner::ScheduleRunner(sdbus::IConnection& bus, storage::StorageService& service, JobRegistry& jobs,
                               storage::Scheduler& scheduler)
    : bus_(bus), service_(service), jobs_(jobs), scheduler_(scheduler) {}

void ScheduleRunner::start() {
    std::weak_ptr<bool> alive = alive_;
    service_.schedules().on_change([this, alive](const VolumeKey& volume) {
        if (!alive.expired())
            arm(volume);
    });
    systemd_ = SystemdTimers::connect(bus_);
    if (systemd_)
        systemd_->stop_all(timer_prefix); // an earlier vmstord's: they are made again below
    auto volumes = service_.schedules().volumes();
    spdlog::info("{} volume schedule(s) on record; schedules run as {}", volumes.size(),
                 systemd_ ? "systemd timers (systemctl list-timers 'vmstor-*')"
                          : "vmstord's own timer (no systemd manager on the bus)");
    for (const VolumeKey& volume : volumes)
        arm(volume);
}

void ScheduleRunner::follow_with_systemd(const VolumeKey& volume, const storage::VolumeSchedule& schedule) {
    auto timer = timers_.find(volume);
    const std::string calendar = schedule.snapshot ? schedule.snapshot->calendar : std::string();
    if (timer != timers_.end() && timer->second.second == calendar)
        return;
    if (timer != timers_.end()) {
        systemd_->stop(timer->second.first);
        timers_.erase(timer);
    }
    if (calendar.empty())
        return;
    // A new name each time: the unit stopped just now may not be gone yet when the new one starts.
    const std::string unit = fmt::format("{}{}-{}-{}-{}.timer", timer_prefix, unit_name_part(volume.first),
                                         unit_name_part(volume.second), wall_clock_now(), ++timers_made_);
    systemd_->start(
        unit, fmt::format("vmstor snapshot schedule of volume {} in pool {}", volume.second, volume.first),
        calendar, volume_path(volume.first, volume.second), "org.vmstor.Storage1.Volume", "RunSchedule");
    timers_[volume] = {unit, calendar};
}

void ScheduleRunner::arm(const VolumeKey& volume) {
    Armed& armed = armed_[volume];
    ++armed.generation;
    armed.next_run = 0;
    const storage::VolumeSchedule schedule = service_.schedules().schedule(volume);
    const storage::ScheduleRecord* record =
        service_.schedules().record(volume, storage::ScheduledWork::Snapshot);
    if (systemd_)
        follow_with_systemd(volume, schedule);
    if (!schedule.snapshot || !record) {
        armed_.erase(volume);
        return;
    }
    try {
        auto next =
            storage::next_elapse(schedule.snapshot->calendar, std::max(record->last_run, record->since));
        if (!next) {
            spdlog::info("the snapshot schedule of volume '{}' in pool '{}' ({}) will not run again",
                         volume.second, volume.first, schedule.snapshot->calendar);
            return;
        }
        armed.next_run = *next;
    } catch (const std::exception& e) {
        spdlog::error(
            "cannot work out the next snapshot of volume '{}' in pool '{}': {}; trying again in a minute",
            volume.second, volume.first, e.what());
        armed.next_run = wall_clock_now() + longest_sleep_seconds;
    }
    wait(volume, armed.generation);
}

void ScheduleRunner::wait(const VolumeKey& volume, std::uint64_t generation) {
    auto armed = armed_.find(volume);
    if (armed == armed_.end() || armed->second.generation != generation || armed->second.next_run == 0)
        return;
    const std::int64_t now = wall_clock_now();
    if (armed->second.next_run <= now) {
        armed->second.next_run = 0;
        without_throwing("scheduled snapshot", [&] { run_due(volume); });
        return;
    }
    if (systemd_)
        return; // the systemd timer runs it; vmstord's own timer only catches up on runs missed while down
    const std::int64_t sleep = std::min(armed->second.next_run - now, longest_sleep_seconds);
    std::weak_ptr<bool> alive = alive_;
    scheduler_.after(std::chrono::seconds(sleep), [this, alive, volume, generation] {
        if (!alive.expired())
            wait(volume, generation);
    });
}

void ScheduleRunner::skip(const VolumeKey& volume, std::int64_t now, const std::string& why) {
    spdlog::warn("scheduled snapshot of volume '{}' in pool '{}' skipped: {}", volume.second, volume.first,
                 why);
    service_.schedules().record_run(volume, storage::ScheduledWork::Snapshot, now, "");
    arm(volume);
}

void ScheduleRunner::run_due(const VolumeKey& volume) {
    const std::int64_t now = wall_clock_now();
    const auto& volumes = service_.volumes(volume.first);
    if (volumes.find(volume.second) == volumes.end()) {
        // Not in the model (yet): libvirt not reached, or the pool stopped. The run waits for it.
        spdlog::debug("scheduled snapshot of volume '{}' in pool '{}' waits: the volume is not there",
                      volume.second, volume.first);
        // Retried by vmstord itself in either mode: with systemd, this is a run it caught up on at start.
        scheduler_.after(
            std::chrono::seconds(absent_volume_retry_seconds),
            [this, alive = std::weak_ptr<bool>(alive_), volume, generation = armed_[volume].generation] {
                auto found = armed_.find(volume);
                if (!alive.expired() && found != armed_.end() && found->second.generation == generation)
                    run_due(volume);
            });
        return;
    }
    try {
        run_now(volume);
    } catch (const std::exception& e) {
        skip(volume, now, e.what());
    }
}

std::string ScheduleRunner::run_now(const VolumeKey& volume) {
    const std::int64_t now = wall_clock_now();
    const storage::VolumeSchedule schedule = service_.schedules().schedule(volume);
    const storage::ScheduleRecord* record =
        service_.schedules().record(volume, storage::ScheduledWork::Snapshot);
    if (!schedule.snapshot || !record)
        throw vmstor::Error(
            ErrorCode::NotFound,
            fmt::format("volume '{}' in pool '{}' has no snapshot schedule", volume.second, volume.first));
    const storage::VolumeState& state = service_.volume(volume.first, volume.second);
    if (state.format != "qcow2")
        throw vmstor::Error(ErrorCode::NotSupported,
                            fmt::format("internal snapshots need the qcow2 format, not '{}'", state.format));
    if (state.locked)
        throw vmstor::Error(
            ErrorCode::Busy,
            "a running guest writes the volume (snapshots through libvirt are not supported yet)");
    const std::string name = storage::scheduled_snapshot_name(now);
    for (const storage::SnapshotState& snapshot : state.snapshots)
        if (snapshot.name == name)
            throw vmstor::Error(ErrorCode::Busy,
                                fmt::format("a snapshot named '{}' was made this second", name));

    std::vector<storage::RetainedPoint> points = record->made;
    points.push_back({name, now, record->next_sequence});
    std::vector<std::string> prune = storage::points_to_prune(points, schedule.snapshot->retention, now);

    auto outcome = std::make_shared<SnapshotOutcome>();
    JobSpec spec;
    spec.operation = "scheduled-snapshot";
    spec.objects = {sdbus::ObjectPath(volume_path(volume.first, volume.second))};
    spec.started_by_uid = 0;
    spec.cancelable = false;
    // Claimed as written, not locked by the registry: create_snapshot_in takes QEMU's write lock itself.
    spec.files = {state.path};
    spec.lock_files = false;
    spec.work = [image = service_.image_of(state), capacity = state.capacity, name, prune,
                 outcome](storage::JobContext&) {
        storage::create_snapshot_in(image, name);
        outcome->made = true;
        const auto snapshots = storage::read_snapshots(image, capacity);
        for (const std::string& old : prune) {
            auto snapshot = std::find_if(snapshots.begin(), snapshots.end(),
                                         [&](const storage::SnapshotState& s) { return s.name == old; });
            if (snapshot != snapshots.end())
                storage::delete_snapshot_in(image, snapshot->id);
            outcome->pruned.push_back(old); // gone either way: deleted now, or by a user before
        }
    };
    std::weak_ptr<bool> alive = alive_;
    spec.finished = [this, alive, volume, name, now, outcome](bool success) {
        if (alive.expired())
            return;
        service_.volume_file_changed(volume.first, volume.second);
        service_.schedules().record_run(volume, storage::ScheduledWork::Snapshot, now,
                                        outcome->made ? name : "");
        service_.schedules().forget_points(volume, storage::ScheduledWork::Snapshot, outcome->pruned);
        if (success)
            spdlog::info("scheduled snapshot '{}' of volume '{}' in pool '{}' made; {} older pruned", name,
                         volume.second, volume.first, outcome->pruned.size());
        else
            spdlog::error("scheduled snapshot '{}' of volume '{}' in pool '{}' failed ({}made, {} pruned)",
                          name, volume.second, volume.first, outcome->made ? "" : "not ",
                          outcome->pruned.size());
        if (!systemd_)
            arm(volume);
    };
    return jobs_.start(std::move(spec));
}

} // namespace vmstor::daemon
