#include "options.hpp"

#include "common/error.hpp"

#include <fmt/format.h>
#include <set>

namespace vmstor::daemon {

namespace {

bool accepts(std::string_view signatures, const std::string& actual) {
    std::size_t start = 0;
    while (start <= signatures.size()) {
        std::size_t end = signatures.find('|', start);
        if (end == std::string_view::npos)
            end = signatures.size();
        if (signatures.substr(start, end - start) == actual)
            return true;
        start = end + 1;
    }
    return false;
}

} // namespace

Options::Options(const Map& raw, std::string_view context, std::vector<OptionSpec> specs) : raw_(raw) {
    specs.push_back({"auth.no_user_interaction", "b"});
    for (const auto& [key, value] : raw) {
        auto spec =
            std::find_if(specs.begin(), specs.end(), [&](const OptionSpec& s) { return s.key == key; });
        if (spec == specs.end()) {
            std::string known;
            for (const OptionSpec& s : specs)
                known += (known.empty() ? "" : ", ") + std::string(s.key);
            throw vmstor::Error(ErrorCode::InvalidArgument,
                                fmt::format("{}: unknown key '{}' (known keys: {})", context, key, known));
        }
        std::string actual = value.peekValueType();
        if (!accepts(spec->signatures, actual))
            throw vmstor::Error(ErrorCode::InvalidArgument,
                                fmt::format("{}: key '{}' must have D-Bus type '{}', not '{}'", context, key,
                                            spec->signatures, actual));
    }
}

const sdbus::Variant* Options::find(std::string_view key) const {
    auto it = raw_.find(std::string(key));
    return it == raw_.end() ? nullptr : &it->second;
}

std::string Options::signature(std::string_view key) const {
    const sdbus::Variant* value = find(key);
    return value ? value->peekValueType() : std::string();
}

std::optional<std::string> Options::text(std::string_view key) const {
    const sdbus::Variant* value = find(key);
    if (!value)
        return std::nullopt;
    if (value->peekValueType() == "o")
        return std::string(value->get<sdbus::ObjectPath>());
    return value->get<std::string>();
}

bool Options::flag(std::string_view key, bool fallback) const {
    const sdbus::Variant* value = find(key);
    return value ? value->get<bool>() : fallback;
}

std::optional<std::uint32_t> Options::u32(std::string_view key) const {
    const sdbus::Variant* value = find(key);
    return value ? std::optional(value->get<std::uint32_t>()) : std::nullopt;
}

std::optional<std::uint64_t> Options::u64(std::string_view key) const {
    const sdbus::Variant* value = find(key);
    return value ? std::optional(value->get<std::uint64_t>()) : std::nullopt;
}

std::optional<std::vector<std::string>> Options::texts(std::string_view key) const {
    const sdbus::Variant* value = find(key);
    return value ? std::optional(value->get<std::vector<std::string>>()) : std::nullopt;
}

} // namespace vmstor::daemon
