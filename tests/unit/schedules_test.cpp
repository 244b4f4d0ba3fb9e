// Schedules and their records survive a restart, keep what a policy change must not lose, and a damaged
// file loses nothing but itself.
#include "storage/schedules.hpp"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <stdlib.h>
#include <string>

namespace fs = std::filesystem;
using vmstor::storage::BackupSchedule;
using vmstor::storage::RetentionPolicy;
using vmstor::storage::ScheduleBook;
using vmstor::storage::scheduled_snapshot_name;
using vmstor::storage::ScheduledWork;
using vmstor::storage::SnapshotSchedule;
using vmstor::storage::VolumeSchedule;

namespace {

struct StateDir {
    fs::path path;
    StateDir() {
        std::string pattern = (fs::temp_directory_path() / "vmstor-schedules-XXXXXX").string();
        path = ::mkdtemp(pattern.data());
    }
    ~StateDir() { fs::remove_all(path); }
};

VolumeSchedule nightly(std::uint32_t days) {
    VolumeSchedule schedule;
    schedule.snapshot = SnapshotSchedule{"*-*-* 02:00:00", RetentionPolicy::parse({{"daily", days}}, 0)};
    return schedule;
}

const ScheduleBook::VolumeKey disk{"default", "disk.qcow2"};

} // namespace

TEST_CASE("a schedule and what it made survive a restart") {
    StateDir state;
    VolumeSchedule schedule = nightly(7);
    schedule.backup = BackupSchedule{"*-*-* 03:00:00", "Sun *-*-* 03:00:00", "backups", 30};
    {
        ScheduleBook book(state.path.string());
        book.set(disk, schedule, 1000);
        book.record_run(disk, ScheduledWork::Snapshot, 2000, scheduled_snapshot_name(2000));
        book.record_run(disk, ScheduledWork::Snapshot, 3000, "");
    }
    ScheduleBook again(state.path.string());
    CHECK(again.schedule(disk) == schedule);
    const auto* record = again.record(disk, ScheduledWork::Snapshot);
    REQUIRE(record);
    CHECK(record->since == 1000);
    CHECK(record->last_run == 3000);
    REQUIRE(record->made.size() == 1);
    CHECK(record->made[0].name == "auto-19700101T003320Z");
    CHECK(record->made[0].sequence == 0);
    CHECK(again.record(disk, ScheduledWork::Backup)->made.empty());
    CHECK(fs::status(state.path / "schedules.json").permissions() ==
          (fs::perms::owner_read | fs::perms::owner_write));
}

TEST_CASE("a changed policy keeps the record of what the schedule made; removing the schedule drops it") {
    StateDir state;
    ScheduleBook book(state.path.string());
    book.set(disk, nightly(7), 1000);
    book.record_run(disk, ScheduledWork::Snapshot, 2000, "auto-a");
    book.record_run(disk, ScheduledWork::Snapshot, 3000, "auto-b");
    book.set(disk, nightly(1), 4000);
    const auto* record = book.record(disk, ScheduledWork::Snapshot);
    REQUIRE(record);
    CHECK(record->made.size() == 2);
    CHECK(record->since == 1000);
    book.forget_points(disk, ScheduledWork::Snapshot, {"auto-a"});
    CHECK(book.record(disk, ScheduledWork::Snapshot)->made.size() == 1);
    CHECK(book.record(disk, ScheduledWork::Backup) == nullptr);

    book.set(disk, VolumeSchedule{}, 5000);
    CHECK(book.schedule(disk).empty());
    CHECK(book.volumes().empty());
    book.record_run(disk, ScheduledWork::Snapshot, 6000, "auto-late"); // a run that ended after the removal
    CHECK(book.volumes().empty());
    book.set(disk, nightly(7), 7000);
    CHECK(book.record(disk, ScheduledWork::Snapshot)->made.empty());
    CHECK(book.record(disk, ScheduledWork::Snapshot)->since == 7000);
}

TEST_CASE("a damaged schedules file is read as no schedules") {
    StateDir state;
    std::ofstream(state.path / "schedules.json") << "{\"version\": 1, \"volumes\": [{\"pool\": 3}]}";
    ScheduleBook book(state.path.string());
    CHECK(book.volumes().empty());
    book.set(disk, nightly(2), 1);
    CHECK(ScheduleBook(state.path.string()).schedule(disk) == nightly(2));
}
