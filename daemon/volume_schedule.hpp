// A volume's schedule on D-Bus: the a{sv} of Volume.SetSchedule read into a storage::VolumeSchedule, and
// the Schedule property written from one.
#pragma once

#include "storage/schedules.hpp"

#include <map>
#include <sdbus-c++/Types.h>
#include <string>
#include <systemd/sd-bus.h>

namespace vmstor::daemon {

/// @brief Reads and checks a schedule's keys and types (the calendar expression as given); throws
/// InvalidArgument, or NotSupported for the backup keys (scheduled backups are not implemented yet).
storage::VolumeSchedule parse_schedule(const std::map<std::string, sdbus::Variant>& schedule);

/// @brief `schedule` with its calendar checked and normalized by systemd's parser (a helper program: call
/// it off the bus thread); throws InvalidArgument naming the expression.
storage::VolumeSchedule normalize_schedule(storage::VolumeSchedule schedule);

/// @brief Appends the Schedule property's value (a{sv}, empty when there is no schedule) to `reply`.
int append_schedule(sd_bus_message* reply, const storage::VolumeSchedule& schedule);

} // namespace vmstor::daemon
