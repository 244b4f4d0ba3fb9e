#include "size.hpp"

#include "error.hpp"

#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fmt/format.h>

namespace vmstor {

std::uint64_t parse_size(std::string_view text) {
    auto refuse = [&](std::string_view why) {
        return Error(ErrorCode::InvalidArgument, fmt::format("invalid size '{}': {}", text, why));
    };
    std::size_t digits_end = 0;
    while (digits_end < text.size() &&
           (std::isdigit(static_cast<unsigned char>(text[digits_end])) || text[digits_end] == '.'))
        ++digits_end;
    if (digits_end == 0)
        throw refuse("it does not start with a number");
    std::string_view number = text.substr(0, digits_end);
    std::string suffix;
    for (char c : text.substr(digits_end))
        suffix.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
    if (suffix.ends_with("IB"))
        suffix.resize(suffix.size() - 2);
    else if (suffix.ends_with("B"))
        suffix.resize(suffix.size() - 1);

    static constexpr std::string_view units = "KMGTPE";
    unsigned shift = 0;
    if (!suffix.empty()) {
        auto pos = units.find(suffix);
        if (suffix.size() != 1 || pos == std::string_view::npos)
            throw refuse("the unit must be one of K, M, G, T, P, E (powers of 1024) or none");
        shift = 10 * static_cast<unsigned>(pos + 1);
    }

    if (number.find('.') == std::string_view::npos) {
        std::uint64_t value = 0;
        auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
        if (ec != std::errc() || end != number.data() + number.size())
            throw refuse("the number is too large");
        if (shift && value > (UINT64_MAX >> shift))
            throw refuse("it does not fit in 64 bits");
        return value << shift;
    }
    if (shift == 0)
        throw refuse("a fraction of a byte needs a unit");
    double value = 0;
    auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
    if (ec != std::errc() || end != number.data() + number.size())
        throw refuse("the number is malformed");
    double bytes = std::ldexp(value, static_cast<int>(shift));
    if (!(bytes < 18446744073709551616.0))
        throw refuse("it does not fit in 64 bits");
    return static_cast<std::uint64_t>(bytes);
}

std::string format_size(std::uint64_t bytes) {
    static constexpr std::array<const char*, 7> units = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (bytes < 1024)
        return fmt::format("{} B", bytes);
    double value = static_cast<double>(bytes);
    std::size_t unit = 0;
    while (value >= 1024 && unit + 1 < units.size()) {
        value /= 1024;
        ++unit;
    }
    if (value == std::floor(value))
        return fmt::format("{:.0f} {}", value, units[unit]);
    return fmt::format("{:.1f} {}", value, units[unit]);
}

} // namespace vmstor
