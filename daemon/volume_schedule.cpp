#include "volume_schedule.hpp"

#include "authorizer.hpp"
#include "error_boundary.hpp"
#include "object_paths.hpp"
#include "options.hpp"
#include "reply_workers.hpp"
#include "schedule_runner.hpp"
#include "storage/calendar.hpp"
#include "volume_bus.hpp"
#include "volume_object.hpp"

#include <chrono>
#include <fmt/format.h>
#include <optional>

namespace vmstor::daemon {

namespace {

const std::vector<OptionSpec> schedule_keys = {
    {"snapshot.calendar", "s"}, {"snapshot.keep", "a{su}"},    {"snapshot.max_age", "t"},
    {"backup.calendar", "s"},   {"backup.full_calendar", "s"}, {"backup.target", "o"},
    {"backup.keep_days", "u"},
};

} // namespace

storage::VolumeSchedule parse_schedule(const std::map<std::string, sdbus::Variant>& schedule) {
    if (schedule.contains("auth.no_user_interaction"))
        throw vmstor::Error(ErrorCode::InvalidArgument,
                            "Volume.SetSchedule schedule: 'auth.no_user_interaction' belongs in the options");
    Options keys(schedule, "Volume.SetSchedule schedule", schedule_keys);
    storage::VolumeSchedule parsed;
    for (const auto& [key, value] : schedule)
        if (key.starts_with("backup."))
            throw vmstor::Error(
                ErrorCode::NotSupported,
                fmt::format("Volume.SetSchedule: '{}': scheduled backups are not implemented yet; "
                            "snapshot schedules are",
                            key));
    auto calendar = keys.text("snapshot.calendar");
    if (!calendar) {
        if (!schedule.empty())
            throw vmstor::Error(
                ErrorCode::InvalidArgument,
                "Volume.SetSchedule: a snapshot schedule needs 'snapshot.calendar' (a systemd "
                "calendar expression such as 'daily' or 'Mon..Fri 02:00')");
        return parsed;
    }
    std::map<std::string, std::uint32_t> keep;
    if (auto found = schedule.find("snapshot.keep"); found != schedule.end())
        keep = found->second.get<std::map<std::string, std::uint32_t>>();
    parsed.snapshot = storage::SnapshotSchedule{
        *calendar, storage::RetentionPolicy::parse(keep, keys.u64("snapshot.max_age").value_or(0))};
    return parsed;
}

storage::VolumeSchedule normalize_schedule(storage::VolumeSchedule schedule) {
    if (schedule.snapshot)
        schedule.snapshot->calendar =
            storage::normalize_calendar(schedule.snapshot->calendar, "snapshot.calendar");
    return schedule;
}

int append_schedule(sd_bus_message* reply, const storage::VolumeSchedule& schedule) {
    int r = sd_bus_message_open_container(reply, SD_BUS_TYPE_ARRAY, "{sv}");
    if (r >= 0 && schedule.snapshot) {
        const storage::SnapshotSchedule& snapshot = *schedule.snapshot;
        r = sd_bus_message_append(reply, "{sv}", "snapshot.calendar", "s", snapshot.calendar.c_str());
        if (r >= 0 && !snapshot.retention.keep.empty()) {
            r = sd_bus_message_open_container(reply, SD_BUS_TYPE_DICT_ENTRY, "sv");
            if (r >= 0)
                r = sd_bus_message_append(reply, "s", "snapshot.keep");
            if (r >= 0)
                r = sd_bus_message_open_container(reply, SD_BUS_TYPE_VARIANT, "a{su}");
            if (r >= 0)
                r = sd_bus_message_open_container(reply, SD_BUS_TYPE_ARRAY, "{su}");
            for (const auto& [period, count] : snapshot.retention.keep)
                if (r >= 0)
                    r = sd_bus_message_append(reply, "{su}",
                                              std::string(storage::period_name(period)).c_str(), count);
            for (int level = 0; level < 3 && r >= 0; ++level)
                r = sd_bus_message_close_container(reply);
        }
        if (r >= 0 && snapshot.retention.max_age_seconds > 0)
            r = sd_bus_message_append(reply, "{sv}", "snapshot.max_age", "t",
                                      static_cast<std::uint64_t>(snapshot.retention.max_age_seconds));
    }
    return r < 0 ? r : sd_bus_message_close_container(reply);
}

void VolumeObject::SetSchedule(const Caller& caller, sdbus::Result<>&& result, Dict schedule, Dict options) {
    guarded([&] {
        Options(options, "Volume.SetSchedule options", {});
        storage::VolumeSchedule request = parse_schedule(schedule);
        auto reply = std::make_shared<sdbus::Result<>>(std::move(result));
        std::weak_ptr<int> object = alive_;
        // systemd-analyze reads the calendar on a reply thread; then polkit is asked: the bus thread waits
        // for neither.
        replies_.run([request] { return normalize_schedule(request); },
                     [this, object, caller, reply](storage::VolumeSchedule parsed, std::exception_ptr error) {
                         if (!error && object.expired())
                             error = std::make_exception_ptr(vmstor::Error(
                                 ErrorCode::NotFound, "Volume.SetSchedule: the volume went away meanwhile"));
                         std::optional<Permission> needed;
                         if (!error) {
                             try {
                                 needed = opening(Action::ManageSnapshots);
                             } catch (...) {
                                 error = std::current_exception();
                             }
                         }
                         if (error) {
                             reply->returnError(to_dbus_error(error));
                             return;
                         }
                         reply_when_authorized(
                             authorizer_, caller, alive_, std::move(*reply), {*needed},
                             [this, parsed](const Caller& who) { set_schedule(who, parsed); });
                     });
    });
}

void VolumeObject::set_schedule(const Caller& who, const storage::VolumeSchedule& schedule) {
    const std::int64_t now =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    if (schedule == service_.schedules().schedule({pool_, name_}))
        return;
    service_.schedules().set({pool_, name_}, schedule, now);
    spdlog::info("uid {} {} the schedule of volume '{}' in pool '{}'", who.uid,
                 schedule.empty() ? "removed" : "set", name_, pool_);
    bus_.properties_changed(volume_path(pool_, name_), {"Schedule"});
}

void VolumeObject::RunSchedule(const Caller& caller, sdbus::Result<sdbus::ObjectPath>&& result,
                               Dict options) {
    guarded([&] {
        Options(options, "Volume.RunSchedule options", {});
        reply_when_authorized(authorizer_, caller, alive_, std::move(result),
                              {opening(Action::ManageSnapshots)}, [this](const Caller& who) {
                                  spdlog::info(
                                      "uid {} runs the snapshot schedule of volume '{}' in pool '{}'",
                                      who.uid, name_, pool_);
                                  return sdbus::ObjectPath(schedules_.run_now({pool_, name_}));
                              });
    });
}

} // namespace vmstor::daemon
