#include "schedules.hpp"

#include "common/error.hpp"
#include "common/files.hpp"

#include <algorithm>
#include <ctime>
#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace vmstor::storage {

namespace {

using nlohmann::json;

json to_json(const ScheduleRecord& record) {
    json made = json::array();
    for (const RetainedPoint& point : record.made)
        made.push_back({{"name", point.name}, {"time", point.time}, {"sequence", point.sequence}});
    return {{"since", record.since},
            {"last_run", record.last_run},
            {"next_sequence", record.next_sequence},
            {"made", made}};
}

ScheduleRecord record_from(const json& in) {
    ScheduleRecord record;
    record.since = in.at("since").get<std::int64_t>();
    record.last_run = in.at("last_run").get<std::int64_t>();
    record.next_sequence = in.at("next_sequence").get<std::uint64_t>();
    for (const json& point : in.at("made"))
        record.made.push_back({point.at("name").get<std::string>(), point.at("time").get<std::int64_t>(),
                               point.at("sequence").get<std::uint64_t>()});
    return record;
}

json to_json(const VolumeSchedule& schedule) {
    json out = json::object();
    if (schedule.snapshot) {
        json keep = json::object();
        for (const auto& [period, count] : schedule.snapshot->retention.keep)
            keep[std::string(period_name(period))] = count;
        out["snapshot"] = {{"calendar", schedule.snapshot->calendar},
                           {"keep", keep},
                           {"max_age", schedule.snapshot->retention.max_age_seconds}};
    }
    if (schedule.backup)
        out["backup"] = {{"calendar", schedule.backup->calendar},
                         {"full_calendar", schedule.backup->full_calendar},
                         {"target_pool", schedule.backup->target_pool},
                         {"keep_days", schedule.backup->keep_days}};
    return out;
}

VolumeSchedule schedule_from(const json& in) {
    VolumeSchedule schedule;
    if (in.contains("snapshot")) {
        const json& snapshot = in.at("snapshot");
        schedule.snapshot = SnapshotSchedule{
            snapshot.at("calendar").get<std::string>(),
            RetentionPolicy::parse(snapshot.at("keep").get<std::map<std::string, std::uint32_t>>(),
                                   snapshot.at("max_age").get<std::uint64_t>())};
    }
    if (in.contains("backup")) {
        const json& backup = in.at("backup");
        schedule.backup = BackupSchedule{
            backup.at("calendar").get<std::string>(), backup.at("full_calendar").get<std::string>(),
            backup.at("target_pool").get<std::string>(), backup.at("keep_days").get<std::uint32_t>()};
    }
    return schedule;
}

} // namespace

std::string scheduled_snapshot_name(std::int64_t time) {
    std::time_t t = time;
    std::tm utc{};
    ::gmtime_r(&t, &utc);
    return fmt::format("auto-{:04}{:02}{:02}T{:02}{:02}{:02}Z", utc.tm_year + 1900, utc.tm_mon + 1,
                       utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec);
}

ScheduleBook::ScheduleBook(std::string directory) : directory_(std::move(directory)) {
    load();
}

void ScheduleBook::set(const VolumeKey& volume, const VolumeSchedule& schedule, std::int64_t now) {
    if (schedule.empty()) {
        remove(volume);
        return;
    }
    auto [entry, added] = entries_.try_emplace(volume);
    Entry& e = entry->second;
    // A kind of work newly scheduled starts now; one that stays scheduled keeps its runs and points.
    if (schedule.snapshot && (added || !e.schedule.snapshot))
        e.snapshots = ScheduleRecord{now, 0, 0, {}};
    if (schedule.backup && (added || !e.schedule.backup))
        e.backups = ScheduleRecord{now, 0, 0, {}};
    e.schedule = schedule;
    save();
    if (listener_)
        listener_(volume);
}

VolumeSchedule ScheduleBook::schedule(const VolumeKey& volume) const {
    auto entry = entries_.find(volume);
    return entry == entries_.end() ? VolumeSchedule{} : entry->second.schedule;
}

void ScheduleBook::remove(const VolumeKey& volume) {
    if (!entries_.erase(volume))
        return;
    save();
    if (listener_)
        listener_(volume);
}

std::vector<ScheduleBook::VolumeKey> ScheduleBook::volumes() const {
    std::vector<VolumeKey> all;
    for (const auto& [key, entry] : entries_)
        all.push_back(key);
    return all;
}

const ScheduleRecord* ScheduleBook::record(const VolumeKey& volume, ScheduledWork work) const {
    auto entry = entries_.find(volume);
    if (entry == entries_.end())
        return nullptr;
    const Entry& e = entry->second;
    if (work == ScheduledWork::Snapshot)
        return e.schedule.snapshot ? &e.snapshots : nullptr;
    return e.schedule.backup ? &e.backups : nullptr;
}

void ScheduleBook::record_run(const VolumeKey& volume, ScheduledWork work, std::int64_t time,
                              const std::string& point_name) {
    Entry* e = find(volume);
    if (!e)
        return; // the schedule was removed while the run went on
    ScheduleRecord& record = work == ScheduledWork::Snapshot ? e->snapshots : e->backups;
    record.last_run = std::max(record.last_run, time);
    if (!point_name.empty())
        record.made.push_back({point_name, time, record.next_sequence++});
    save();
}

void ScheduleBook::forget_points(const VolumeKey& volume, ScheduledWork work,
                                 const std::vector<std::string>& names) {
    Entry* e = find(volume);
    if (!e || names.empty())
        return;
    ScheduleRecord& record = work == ScheduledWork::Snapshot ? e->snapshots : e->backups;
    std::erase_if(record.made, [&](const RetainedPoint& point) {
        return std::find(names.begin(), names.end(), point.name) != names.end();
    });
    save();
}

ScheduleBook::Entry* ScheduleBook::find(const VolumeKey& volume) {
    auto entry = entries_.find(volume);
    return entry == entries_.end() ? nullptr : &entry->second;
}

void ScheduleBook::save() const {
    if (directory_.empty())
        return;
    json volumes = json::array();
    for (const auto& [key, entry] : entries_)
        volumes.push_back({{"pool", key.first},
                           {"volume", key.second},
                           {"schedule", to_json(entry.schedule)},
                           {"snapshots", to_json(entry.snapshots)},
                           {"backups", to_json(entry.backups)}});
    replace_file(directory_ + "/schedules.json", json{{"version", 1}, {"volumes", volumes}}.dump(1) + "\n",
                 0600, "schedules");
}

void ScheduleBook::load() {
    if (directory_.empty())
        return;
    const std::string path = directory_ + "/schedules.json";
    std::ifstream in(path);
    if (!in)
        return;
    try {
        json file = json::parse(in);
        for (const json& volume : file.at("volumes"))
            entries_[{volume.at("pool").get<std::string>(), volume.at("volume").get<std::string>()}] =
                Entry{schedule_from(volume.at("schedule")), record_from(volume.at("snapshots")),
                      record_from(volume.at("backups"))};
    } catch (const std::exception& e) {
        entries_.clear();
        spdlog::error("{} is damaged ({}): no volume has a schedule until one is set again", path, e.what());
    }
}

} // namespace vmstor::storage
