// Validation of the names callers give us, and the D-Bus object path escaping of those names.
#pragma once

#include <string>
#include <string_view>

namespace vmstor {

/// @brief Throws InvalidArgument unless `name` is usable as a pool, volume or snapshot name:
/// 1..255 bytes, not "." or "..", no '/', NUL or control characters. `kind` names the thing in the message.
void validate_name(std::string_view kind, std::string_view name);

/// @brief One object path segment made by sd_bus_path_encode: every byte outside [A-Za-z0-9], and a
/// digit that comes first, becomes _xx (lowercase hex); the empty string becomes "_".
std::string escape_path_segment(std::string_view name);

/// @brief The name sd_bus_path_decode reads from a segment; throws InvalidArgument on a segment that
/// escape_path_segment would not have made (a malformed escape, "a_1", or a non-canonical one, "_61").
std::string unescape_path_segment(std::string_view segment);

} // namespace vmstor
