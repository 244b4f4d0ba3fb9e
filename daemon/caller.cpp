#include "caller.hpp"

#include "authorizer.hpp"

#include "raw_bus.hpp"

#include <algorithm>
#include <cstring>
#include <grp.h>
#include <pwd.h>
#include <sdbus-c++/Error.h>
#include <string_view>
#include <systemd/sd-bus.h>
#include <unistd.h>
#include <vector>

namespace vmstor::daemon {

namespace {

/// @brief Reads the bool auth.no_user_interaction from the a{sv} at the read position, if present.
bool read_no_user_interaction(sd_bus_message* m) {
    bool found = false;
    if (sd_bus_message_enter_container(m, SD_BUS_TYPE_ARRAY, "{sv}") <= 0)
        return false;
    while (sd_bus_message_enter_container(m, SD_BUS_TYPE_DICT_ENTRY, "sv") > 0) {
        const char* key = nullptr;
        if (sd_bus_message_read_basic(m, SD_BUS_TYPE_STRING, &key) < 0)
            break;
        int value = 0;
        if (std::string_view(key) == "auth.no_user_interaction" &&
            sd_bus_message_enter_container(m, SD_BUS_TYPE_VARIANT, "b") > 0) {
            if (sd_bus_message_read_basic(m, SD_BUS_TYPE_BOOLEAN, &value) >= 0)
                found = value != 0;
            sd_bus_message_exit_container(m);
        } else if (sd_bus_message_skip(m, "v") < 0) {
            break;
        }
        sd_bus_message_exit_container(m);
    }
    return found;
}

/// @brief Whether the message's last argument is an a{sv} that sets auth.no_user_interaction to true.
/// The handler has read its arguments already: this rewinds and reads the message again.
bool options_forbid_interaction(sd_bus_message* m) {
    if (sd_bus_message_rewind(m, 1) < 0)
        return false;
    int count = 0;
    while (sd_bus_message_skip(m, nullptr) > 0)
        ++count;
    if (count == 0 || sd_bus_message_rewind(m, 1) < 0)
        return false;
    for (int i = 0; i + 1 < count; ++i)
        if (sd_bus_message_skip(m, nullptr) <= 0)
            return false;
    char type = 0;
    const char* contents = nullptr;
    if (sd_bus_message_peek_type(m, &type, &contents) <= 0 || type != SD_BUS_TYPE_ARRAY || !contents ||
        std::strcmp(contents, "{sv}") != 0)
        return false;
    return read_no_user_interaction(m);
}

} // namespace

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

bool caller_allows_interaction(const sdbus::Message& message) {
    // sdbus-c++ 1.2 exposes neither the message's flags nor a way to skip arguments of any type.
    sd_bus_message* m = raw_message(message);
    if (!m || sd_bus_message_get_allow_interactive_authorization(m) <= 0)
        return false;
    return !options_forbid_interaction(m);
}

bool Caller::in_group(std::uint32_t gid) const {
    if (internal || uid == 0)
        return true;
    std::vector<char> buffer(16384);
    struct passwd entry {};
    struct passwd* found = nullptr;
    if (getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found) != 0 || !found)
        return false; // an account without a name has no groups to speak of
    if (found->pw_gid == gid)
        return true;
    int count = 64;
    std::vector<gid_t> groups(static_cast<std::size_t>(count));
    if (getgrouplist(found->pw_name, found->pw_gid, groups.data(), &count) < 0) {
        groups.resize(static_cast<std::size_t>(count));
        if (getgrouplist(found->pw_name, found->pw_gid, groups.data(), &count) < 0)
            return false;
    }
    groups.resize(static_cast<std::size_t>(count));
    return std::find(groups.begin(), groups.end(), gid) != groups.end();
}

} // namespace vmstor::daemon
