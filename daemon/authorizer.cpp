#include "authorizer.hpp"

#include "caller.hpp"
#include "common/error.hpp"

#include <chrono>
#include <fmt/format.h>
#include <sdbus-c++/Error.h>
#include <sdbus-c++/Message.h>
#include <sdbus-c++/Types.h>
#include <spdlog/spdlog.h>

namespace vmstor::daemon {

namespace {
constexpr const char* polkit_name = "org.freedesktop.PolicyKit1";
constexpr const char* polkit_path = "/org/freedesktop/PolicyKit1/Authority";
constexpr const char* polkit_interface = "org.freedesktop.PolicyKit1.Authority";
// polkit answers at once when no interaction is asked for; this bounds a hung polkitd. With interaction it
// waits for the user to authenticate with their agent: the call (and, for now, the main loop) waits too.
constexpr std::chrono::seconds polkit_timeout{10};
constexpr std::chrono::seconds interactive_timeout{120};
// CheckAuthorization's flag AllowUserInteraction.
constexpr std::uint32_t allow_user_interaction = 1;
} // namespace

std::string_view action_id(Action action) {
    switch (action) {
    case Action::Read:
        return "org.vmstor.storage1.read";
    case Action::ManageVolumes:
        return "org.vmstor.storage1.manage-volumes";
    case Action::ManagePools:
        return "org.vmstor.storage1.manage-pools";
    case Action::ManageSnapshots:
        return "org.vmstor.storage1.manage-snapshots";
    }
    return "org.vmstor.storage1.manage-pools";
}

Authorizer::Authorizer(sdbus::IConnection& bus)
    : bus_(bus), polkit_(sdbus::createProxy(bus, polkit_name, polkit_path)) {}

void Authorizer::require(const sdbus::IObject& object, Action action,
                         const std::map<std::string, std::string>& details) {
    const sdbus::Message* message = object.getCurrentlyProcessedMessage();
    if (!message)
        return; // not inside a D-Bus call: the daemon itself
    std::uint32_t uid = UINT32_MAX;
    try {
        uid = message->getCredsUid();
    } catch (const sdbus::Error&) {
    }
    if (uid == 0)
        return;
    std::string id(action_id(action));
    auto refuse = [&](const std::string& why) {
        return vmstor::Error(ErrorCode::NotAuthorized,
                             fmt::format("{}.{} needs the polkit action {}, and uid {} {}",
                                         message->getInterfaceName(), message->getMemberName(), id, uid,
                                         why));
    };

    sdbus::Struct<std::string, std::map<std::string, sdbus::Variant>> subject{
        "system-bus-name", {{"name", sdbus::Variant(message->getSender())}}};
    bool interactive = caller_allows_interaction(*message);
    std::uint32_t flags = interactive ? allow_user_interaction : 0;
    spdlog::debug("asking polkit whether {} (uid {}) may do {} for {}.{}, flags {}", message->getSender(),
                  uid, id, message->getInterfaceName(), message->getMemberName(), flags);
    sdbus::Struct<bool, bool, std::map<std::string, std::string>> result;
    try {
        polkit_->callMethod("CheckAuthorization")
            .onInterface(polkit_interface)
            .withTimeout(interactive ? interactive_timeout : polkit_timeout)
            .withArguments(subject, id, details, flags, std::string())
            .storeResultsTo(result);
    } catch (const sdbus::Error& e) {
        if (!std::exchange(said_unreachable_, true))
            spdlog::warn("polkit did not answer ({}: {}); only root is allowed to call vmstord", e.getName(),
                         e.getMessage());
        throw refuse("polkit, which decides for callers other than root, did not answer");
    }
    said_unreachable_ = false;
    bool authorized = result.get<0>();
    bool challenge = result.get<1>();
    if (authorized)
        return;
    if (interactive)
        throw refuse(challenge ? "did not authenticate" : "is not allowed it by the polkit rules");
    throw refuse(challenge ? "would have to authenticate, and the call did not allow interactive "
                             "authorization (or set auth.no_user_interaction)"
                           : "is not allowed it by the polkit rules");
}

} // namespace vmstor::daemon
