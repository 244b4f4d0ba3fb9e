// Typed, validated access to the a{sv} maps every method takes: unknown keys and wrong types are refused
// with InvalidArgument before a handler does anything.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <sdbus-c++/Types.h>
#include <string>
#include <string_view>
#include <vector>

namespace vmstor::daemon {

struct OptionSpec {
    std::string_view key;
    std::string_view signatures; ///< accepted D-Bus signatures, separated by '|', e.g. "o|s"
};

class Options {
  public:
    using Map = std::map<std::string, sdbus::Variant>;

    /// @brief Checks every key of `raw` against `allowed` (plus auth.no_user_interaction); `context` names
    /// the call in messages, e.g. "CreateVolume options".
    Options(const Map& raw, std::string_view context, std::vector<OptionSpec> allowed);

    bool has(std::string_view key) const { return raw_.contains(std::string(key)); }
    std::optional<std::string> text(std::string_view key) const;
    bool flag(std::string_view key, bool fallback) const;
    std::optional<std::uint32_t> u32(std::string_view key) const;
    std::optional<std::uint64_t> u64(std::string_view key) const;
    std::optional<std::vector<std::string>> texts(std::string_view key) const;
    /// @brief The signature the caller sent for `key` ("" if absent).
    std::string signature(std::string_view key) const;

  private:
    const sdbus::Variant* find(std::string_view key) const;

    const Map& raw_;
};

} // namespace vmstor::daemon
