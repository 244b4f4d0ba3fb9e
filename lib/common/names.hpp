// Validation of the names callers give us, and the D-Bus object path escaping of those names.
#pragma once

#include <string>
#include <string_view>

namespace vmstor {

/// @brief Throws InvalidArgument unless `name` is usable as a pool, volume or snapshot name:
/// 1..255 bytes, not "." or "..", no '/', NUL or control characters. `kind` names the thing in the message.
void validate_name(std::string_view kind, std::string_view name);

/// @brief Escapes one object path segment the way sd_bus_path_encode does: every byte outside
/// [A-Za-z0-9] becomes _xx (lowercase hex); the empty string becomes "_".
std::string escape_path_segment(std::string_view name);

/// @brief The inverse of escape_path_segment; throws InvalidArgument on a malformed segment.
std::string unescape_path_segment(std::string_view segment);

} // namespace vmstor
