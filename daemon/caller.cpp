#include "caller.hpp"

#include <sdbus-c++/Error.h>
#include <sdbus-c++/Message.h>

namespace vmstor::daemon {

std::uint32_t caller_uid(const sdbus::IObject& object) {
    const sdbus::Message* message = object.getCurrentlyProcessedMessage();
    if (!message)
        return UINT32_MAX;
    try {
        return message->getCredsUid();
    } catch (const sdbus::Error&) {
        return UINT32_MAX;
    }
}

} // namespace vmstor::daemon
