// Schedules as systemd timers: where a systemd manager is on the bus, each volume schedule is a transient
// timer (`systemctl list-timers` shows it; nothing is written under /etc) whose service asks vmstord to
// run the schedule (Volume.RunSchedule through busctl). Transient units do not outlive a reboot: vmstord
// makes them again when it starts.
#pragma once

#include <memory>
#include <sdbus-c++/IConnection.h>
#include <sdbus-c++/IProxy.h>
#include <string>
#include <vector>

namespace vmstor::daemon {

class SystemdTimers {
  public:
    /// @brief The manager on `bus`; nullptr when no systemd manager is there (a private bus, a container
    /// without systemd), or busctl, which the timers' services run, is not installed.
    static std::unique_ptr<SystemdTimers> connect(sdbus::IConnection& bus);

    /// @brief Stops the timers a previous vmstord made (their names start with `prefix`). Not their
    /// services: one may be the call that is starting vmstord now.
    void stop_all(const std::string& prefix);
    /// @brief Starts timer `unit` (a name ending in .timer) elapsing at `calendar`, whose service runs
    /// `busctl call` of `method` on `object` with no arguments but an empty a{sv}. Failures are logged.
    void start(const std::string& unit, const std::string& description, const std::string& calendar,
               const std::string& object, const std::string& interface, const std::string& method);
    /// @brief Stops timer `unit`; failures are logged.
    void stop(const std::string& unit);

    SystemdTimers(std::unique_ptr<sdbus::IProxy> manager, std::string busctl);

  private:
    std::unique_ptr<sdbus::IProxy> manager_;
    std::string busctl_;
};

/// @brief `text` as a part of a unit name: characters other than letters, digits, ':', '_' and '.' as
/// \xNN (as systemd-escape does), so that '-' stays a separator.
std::string unit_name_part(const std::string& text);

} // namespace vmstor::daemon
