// Who is calling: the uid of the sender of the message being handled.
#pragma once

#include <cstdint>
#include <sdbus-c++/IObject.h>

namespace vmstor::daemon {

/// @brief The caller's uid, or UINT32_MAX when the bus cannot tell.
std::uint32_t caller_uid(const sdbus::IObject& object);

} // namespace vmstor::daemon
