// Snapshot and backup schedules of volumes, and what each schedule made: kept in the state directory
// (`schedules.json`) so that schedules, their last runs and the points they may prune survive restarts.
// A schedule prunes only points in its own record, never a snapshot or backup a user made.
#pragma once

#include "retention.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace vmstor::storage {

struct SnapshotSchedule {
    std::string calendar; ///< normalized systemd calendar expression
    RetentionPolicy retention;
    bool operator==(const SnapshotSchedule&) const = default;
};

struct BackupSchedule {
    std::string calendar;      ///< when a backup runs
    std::string full_calendar; ///< runs at these times make a full backup; empty: only the first is full
    std::string target_pool;
    std::uint32_t keep_days = 0; ///< 0: keep every backup
    bool operator==(const BackupSchedule&) const = default;
};

struct VolumeSchedule {
    std::optional<SnapshotSchedule> snapshot;
    std::optional<BackupSchedule> backup;
    bool empty() const { return !snapshot && !backup; }
    bool operator==(const VolumeSchedule&) const = default;
};

enum class ScheduledWork { Snapshot, Backup };

/// What one kind of scheduled work of a volume did.
struct ScheduleRecord {
    std::int64_t since = 0;    ///< when the schedule was set: runs before it are not caught up
    std::int64_t last_run = 0; ///< 0: never ran
    std::uint64_t next_sequence = 0;
    std::vector<RetainedPoint> made; ///< points the schedule made and has not pruned, in order
};

/// @brief The name of a snapshot a schedule takes at `time`: "auto-" and the UTC time, e.g.
/// "auto-20261207T020000Z".
std::string scheduled_snapshot_name(std::int64_t time);

class ScheduleBook {
  public:
    using VolumeKey = std::pair<std::string, std::string>; ///< pool, volume

    /// @brief Reads `directory`/schedules.json; an empty `directory` keeps nothing on disk. A damaged file
    /// is logged and read as empty (its schedules are then gone: the log says so).
    explicit ScheduleBook(std::string directory);

    /// @brief Sets (or, when `schedule` is empty, removes) the schedule of a volume at `now`. The records of
    /// points already made stay while the kind of work stays scheduled, so that a new policy prunes them.
    void set(const VolumeKey& volume, const VolumeSchedule& schedule, std::int64_t now);
    /// @brief The volume's schedule; empty when none.
    VolumeSchedule schedule(const VolumeKey& volume) const;
    /// @brief Forgets the volume (it was deleted); its schedule and records go.
    void remove(const VolumeKey& volume);
    std::vector<VolumeKey> volumes() const;
    /// @brief Called after the schedule of a volume was set or removed.
    void on_change(std::function<void(const VolumeKey&)> listener) { listener_ = std::move(listener); }

    const ScheduleRecord* record(const VolumeKey& volume, ScheduledWork work) const;
    /// @brief Notes a run that made `point_name` at `time` (empty name: the run made nothing to keep).
    void record_run(const VolumeKey& volume, ScheduledWork work, std::int64_t time,
                    const std::string& point_name);
    /// @brief Drops pruned points from the record.
    void forget_points(const VolumeKey& volume, ScheduledWork work, const std::vector<std::string>& names);

  private:
    struct Entry {
        VolumeSchedule schedule;
        ScheduleRecord snapshots;
        ScheduleRecord backups;
    };
    Entry* find(const VolumeKey& volume);
    void save() const;
    void load();

    std::string directory_;
    std::map<VolumeKey, Entry> entries_;
    std::function<void(const VolumeKey&)> listener_;
};

} // namespace vmstor::storage
