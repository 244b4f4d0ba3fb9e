#include "raw_bus.hpp"

#include "object_paths.hpp"

#include <sdbus-c++/Error.h>
#include <sdbus-c++/IObject.h>

namespace vmstor::daemon {

namespace {

struct MessageAccess : sdbus::Message {
    static void* raw(const sdbus::Message& message) { return message.*(&MessageAccess::msg_); }
    static sdbus::internal::ISdBus* entry_points(const sdbus::Message& message) {
        return message.*(&MessageAccess::sdbus_);
    }
};

/// @brief Wraps a raw method call the way sdbus-c++ wraps the calls it dispatches itself.
struct RawMethodCall : sdbus::MethodCall {
    RawMethodCall(sd_bus_message* call, sdbus::internal::ISdBus* entry_points)
        : sdbus::MethodCall(call, entry_points) {}
};

} // namespace

sd_bus_message* raw_message(const sdbus::Message& message) {
    return static_cast<sd_bus_message*>(MessageAccess::raw(message));
}

RawBus::RawBus(sdbus::IConnection& connection) {
    // A signal made (never sent) by an object that registers nothing carries the bus it was made on.
    auto probe = sdbus::createObject(connection, root_path);
    sdbus::Signal signal = probe->createSignal("org.vmstor.Storage1.Manager", "Probe");
    bus_ = sd_bus_message_get_bus(raw_message(signal));
    sdbus_ = MessageAccess::entry_points(signal);
    if (!bus_ || !sdbus_)
        throw sdbus::Error("org.freedesktop.DBus.Error.Failed", "cannot reach the sd-bus connection");
}

sdbus::MethodCall RawBus::method_call(sd_bus_message* call) const {
    return RawMethodCall(call, sdbus_);
}

} // namespace vmstor::daemon
