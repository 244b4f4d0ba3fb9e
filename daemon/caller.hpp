// Who is calling and what the call allows: the uid of the sender of the message being handled, and
// whether it lets polkit ask for authentication.
#pragma once

#include <cstdint>
#include <sdbus-c++/IObject.h>
#include <sdbus-c++/Message.h>

namespace vmstor::daemon {

/// @brief The caller's uid, or UINT32_MAX when the bus cannot tell.
std::uint32_t caller_uid(const sdbus::IObject& object);

/// @brief Whether polkit may interact with the user for this call: the message carries
/// ALLOW_INTERACTIVE_AUTHORIZATION and its trailing a{sv} options do not set auth.no_user_interaction.
bool caller_allows_interaction(const sdbus::Message& message);

} // namespace vmstor::daemon
