// libvirt errors: logged through our logger (never libvirt's stderr printer) and turned into vmstor::Error.
#pragma once

#include "common/error.hpp"

#include <string>

namespace vmstor::virt {

/// @brief Installs virSetErrorFunc so that libvirt's errors go to the log at debug level, not to stderr.
void route_errors_to_log();

/// @brief The project's error for libvirt's last error on this thread: NotFound for a missing pool or
/// volume, InvalidArgument for rejected XML or arguments, NotSupported, NotAuthorized, NoSpace, otherwise
/// LibvirtError. The message is `what` followed by libvirt's code and message.
vmstor::Error last_error(const std::string& what);

} // namespace vmstor::virt
