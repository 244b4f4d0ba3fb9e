#include "deferred_property_set.hpp"

#include "error_boundary.hpp"

#include <cerrno>
#include <fmt/format.h>
#include <sdbus-c++/Error.h>
#include <utility>

namespace vmstor::daemon {

DeferredPropertySet::DeferredPropertySet(const RawBus& bus, const std::string& path, std::string interface,
                                         std::map<std::string, std::string> properties, Handler handler)
    : bus_(bus), interface_(std::move(interface)), properties_(std::move(properties)),
      handler_(std::move(handler)) {
    int r = sd_bus_add_object(bus_.get(), &slot_, path.c_str(), &DeferredPropertySet::intercept, this);
    if (r < 0)
        throw sdbus::Error("org.freedesktop.DBus.Error.Failed",
                           fmt::format("cannot watch property changes at {}: errno {}", path, -r));
}

DeferredPropertySet::~DeferredPropertySet() {
    sd_bus_slot_unref(slot_);
}

// Called by sd-bus from C: nothing may be thrown out of it.
int DeferredPropertySet::intercept(sd_bus_message* message, void* userdata, sd_bus_error* error) {
    try {
        return static_cast<DeferredPropertySet*>(userdata)->take_over(message, error);
    } catch (...) {
        return -EIO; // not even an error reply could be made: sd-bus answers with a generic one
    }
}

int DeferredPropertySet::take_over(sd_bus_message* message, sd_bus_error* error) {
    if (sd_bus_message_is_method_call(message, "org.freedesktop.DBus.Properties", "Set") <= 0)
        return 0;
    const char* interface = nullptr;
    const char* property = nullptr;
    if (sd_bus_message_read(message, "ss", &interface, &property) < 0 || interface_ != interface ||
        !properties_.contains(property)) {
        sd_bus_message_rewind(message, true); // the vtables read it again from the start
        return 0;
    }
    const std::string& signature = properties_.at(property);
    char type = 0;
    const char* contents = nullptr;
    if (sd_bus_message_peek_type(message, &type, &contents) <= 0 || type != SD_BUS_TYPE_VARIANT ||
        signature != contents)
        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                 "Property %s.%s has type '%s', the value given has type '%s'",
                                 interface_.c_str(), property, signature.c_str(), contents ? contents : "");
    std::string name = property; // the message's own string, read past below
    sdbus::MethodCall call = bus_.method_call(message);
    try {
        sdbus::Variant value;
        call >> value;
        handler_(name, value, call, sdbus::Result<>(call));
    } catch (...) {
        call.createErrorReply(to_dbus_error(std::current_exception())).send();
    }
    return 1;
}

} // namespace vmstor::daemon
