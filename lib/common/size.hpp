// Sizes as people write them ("10G", "512M", "1.5T", "4096") and as we print them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace vmstor {

/// @brief Parses a byte count with an optional binary suffix (K, M, G, T, P, E; optional "iB" or "B"),
/// case-insensitive, fractions allowed with a suffix. Throws InvalidArgument on anything else or on overflow.
std::uint64_t parse_size(std::string_view text);

/// @brief "10 GiB", "1.5 MiB", "512 B": for tables meant for people.
std::string format_size(std::uint64_t bytes);

} // namespace vmstor
