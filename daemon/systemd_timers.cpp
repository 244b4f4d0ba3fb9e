#include "systemd_timers.hpp"

#include "object_paths.hpp"

#include <cstdlib>
#include <filesystem>
#include <fmt/format.h>
#include <sdbus-c++/Error.h>
#include <sdbus-c++/Types.h>
#include <spdlog/spdlog.h>
#include <sstream>

namespace vmstor::daemon {

namespace {

constexpr const char* systemd_name = "org.freedesktop.systemd1";
constexpr const char* systemd_path = "/org/freedesktop/systemd1";
constexpr const char* manager_interface = "org.freedesktop.systemd1.Manager";
constexpr auto systemd_timeout = std::chrono::seconds(25);

using Property = sdbus::Struct<std::string, sdbus::Variant>;
using AuxUnit = sdbus::Struct<std::string, std::vector<Property>>;
using ExecCommand = sdbus::Struct<std::string, std::vector<std::string>, bool>;
using UnitRow = sdbus::Struct<std::string, std::string, std::string, std::string, std::string, std::string,
                              sdbus::ObjectPath, std::uint32_t, std::string, sdbus::ObjectPath>;

/// @brief `program` found in PATH (the unit's PATH, or the usual one); empty when it is not there.
std::string find_program(const std::string& program) {
    const char* path = std::getenv("PATH");
    std::stringstream dirs(path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
    for (std::string dir; std::getline(dirs, dir, ':');) {
        std::filesystem::path candidate = std::filesystem::path(dir) / program;
        std::error_code error;
        if (!dir.empty() && std::filesystem::is_regular_file(candidate, error))
            return candidate.string();
    }
    return {};
}

} // namespace

std::string unit_name_part(const std::string& text) {
    std::string out;
    for (unsigned char c : text) {
        if (std::isalnum(c) || c == ':' || c == '_' || (c == '.' && !out.empty()))
            out += static_cast<char>(c);
        else
            out += fmt::format("\\x{:02x}", c);
    }
    return out;
}

SystemdTimers::SystemdTimers(std::unique_ptr<sdbus::IProxy> manager, std::string busctl)
    : manager_(std::move(manager)), busctl_(std::move(busctl)) {}

std::unique_ptr<SystemdTimers> SystemdTimers::connect(sdbus::IConnection& bus) {
    try {
        auto dbus = sdbus::createProxy(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus");
        bool owned = false;
        dbus->callMethod("NameHasOwner")
            .onInterface("org.freedesktop.DBus")
            .withArguments(std::string(systemd_name))
            .storeResultsTo(owned);
        if (!owned)
            return nullptr;
        std::string busctl = find_program("busctl");
        if (busctl.empty()) {
            spdlog::warn(
                "systemd is on the bus but busctl is not installed: schedules run on vmstord's own timer");
            return nullptr;
        }
        return std::make_unique<SystemdTimers>(sdbus::createProxy(bus, systemd_name, systemd_path), busctl);
    } catch (const sdbus::Error& e) {
        spdlog::warn("cannot ask the bus for systemd ({}): schedules run on vmstord's own timer",
                     e.getMessage());
        return nullptr;
    }
}

void SystemdTimers::stop_all(const std::string& prefix) {
    try {
        std::vector<UnitRow> units;
        manager_->callMethod("ListUnitsByPatterns")
            .onInterface(manager_interface)
            .withTimeout(systemd_timeout)
            .withArguments(std::vector<std::string>{}, std::vector<std::string>{prefix + "*.timer"})
            .storeResultsTo(units);
        for (const UnitRow& unit : units)
            stop(std::get<0>(unit));
    } catch (const sdbus::Error& e) {
        spdlog::warn("cannot list the timers of an earlier vmstord ({}); they may run twice", e.getMessage());
    }
}

void SystemdTimers::start(const std::string& unit, const std::string& description,
                          const std::string& calendar, const std::string& object,
                          const std::string& interface, const std::string& method) {
    // The timer activates the service of its own name, given beside it.
    const std::string service = unit.substr(0, unit.size() - std::string(".timer").size()) + ".service";
    std::vector<Property> timer = {
        {"Description", sdbus::Variant(description)},
        {"TimersCalendar",
         sdbus::Variant(std::vector<sdbus::Struct<std::string, std::string>>{{"OnCalendar", calendar}})},
    };
    std::vector<std::string> argv = {busctl_, "call", bus_name, object, interface, method, "a{sv}", "0"};
    std::vector<Property> service_properties = {
        {"Description", sdbus::Variant(description)},
        {"Type", sdbus::Variant(std::string("oneshot"))},
        {"ExecStart", sdbus::Variant(std::vector<ExecCommand>{{busctl_, argv, false}})},
    };
    manager_->callMethodAsync("StartTransientUnit")
        .onInterface(manager_interface)
        .withTimeout(systemd_timeout)
        .withArguments(unit, std::string("replace"), timer,
                       std::vector<AuxUnit>{{service, service_properties}})
        .uponReplyInvoke([unit](const sdbus::Error* error, const sdbus::ObjectPath&) {
            if (error)
                spdlog::error("systemd did not start timer {}: {}", unit, error->getMessage());
            else
                spdlog::debug("timer {} started", unit);
        });
}

void SystemdTimers::stop(const std::string& unit) {
    manager_->callMethodAsync("StopUnit")
        .onInterface(manager_interface)
        .withTimeout(systemd_timeout)
        .withArguments(unit, std::string("replace"))
        .uponReplyInvoke([unit](const sdbus::Error* error, const sdbus::ObjectPath&) {
            if (error)
                spdlog::warn("systemd did not stop timer {}: {}", unit, error->getMessage());
        });
}

} // namespace vmstor::daemon
