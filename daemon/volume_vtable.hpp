// The sd-bus vtable of org.vmstor.Storage1.Volume, shared by every volume object: the userdata of a call
// is the VolumeObject that VolumeBus found for the path. Member names, signatures and argument names are
// those of dbus/org.vmstor.Storage1.Volume.xml (tests/integration/test_introspection.py compares them).
#pragma once

#include <systemd/sd-bus.h>

namespace vmstor::daemon {

inline constexpr const char* volume_interface = "org.vmstor.Storage1.Volume";

const sd_bus_vtable* volume_vtable();

} // namespace vmstor::daemon
