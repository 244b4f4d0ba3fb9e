// Properties.Set answered later. sd-bus runs a property setter on the bus thread and replies as soon as it
// returns, so a setter that has to ask polkit would stall every caller until polkit answered. An object
// callback registered on the same path sees each message before the vtables do (sd-bus runs node callbacks
// first), takes over the Set of the properties named here and replies when its handler does.
#pragma once

#include "raw_bus.hpp"

#include <functional>
#include <map>
#include <sdbus-c++/MethodResult.h>
#include <sdbus-c++/Types.h>
#include <string>

namespace vmstor::daemon {

class DeferredPropertySet {
  public:
    /// @brief Runs on the bus thread for a Set of `property`, whose value already has the property's type.
    /// It answers through `reply`, now or later, exactly once; what it throws becomes the call's error.
    using Handler = std::function<void(const std::string& property, const sdbus::Variant& value,
                                       const sdbus::MethodCall& call, sdbus::Result<>&& reply)>;

    /// @brief Takes over Properties.Set of `interface`'s `properties` (name → D-Bus signature) at `path`;
    /// every other message goes on to the vtables. `bus` must outlive this.
    DeferredPropertySet(const RawBus& bus, const std::string& path, std::string interface,
                        std::map<std::string, std::string> properties, Handler handler);
    ~DeferredPropertySet();
    DeferredPropertySet(const DeferredPropertySet&) = delete;
    DeferredPropertySet& operator=(const DeferredPropertySet&) = delete;

  private:
    static int intercept(sd_bus_message* message, void* userdata, sd_bus_error* error);
    int take_over(sd_bus_message* message, sd_bus_error* error);

    const RawBus& bus_;
    std::string interface_;
    std::map<std::string, std::string> properties_;
    Handler handler_;
    sd_bus_slot* slot_ = nullptr;
};

} // namespace vmstor::daemon
