#include "names.hpp"

#include "error.hpp"

#include <cstdlib>
#include <cstring>
#include <fmt/format.h>
#include <memory>
#include <systemd/sd-bus.h>

namespace vmstor {

namespace {

bool is_alnum(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// sd_bus_path_encode and sd_bus_path_decode work on whole paths: one segment is put under this parent.
constexpr const char* segment_parent = "/s";

constexpr std::size_t max_name_bytes = 255;

} // namespace

void validate_name(std::string_view kind, std::string_view name) {
    auto refuse = [&](std::string_view why) {
        return Error(ErrorCode::InvalidArgument, fmt::format("invalid {} name '{}': {}", kind, name, why));
    };
    if (name.empty())
        throw Error(ErrorCode::InvalidArgument, fmt::format("invalid {} name: the name is empty", kind));
    if (name.size() > max_name_bytes)
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("invalid {} name: it is {} bytes long, the limit is {}", kind, name.size(),
                                max_name_bytes));
    if (name == "." || name == "..")
        throw refuse("'.' and '..' are not names");
    for (unsigned char c : name) {
        if (c == '\0')
            throw Error(ErrorCode::InvalidArgument,
                        fmt::format("invalid {} name: it contains a NUL byte", kind));
        if (c < 0x20 || c == 0x7f)
            throw Error(ErrorCode::InvalidArgument,
                        fmt::format("invalid {} name: it contains the control character 0x{:02x}", kind, c));
        if (c == '/')
            throw refuse("it contains '/'");
    }
}

std::string escape_path_segment(std::string_view name) {
    // sd_bus_path_encode takes a C string: a NUL byte would end the name early (validate_name refuses it).
    if (name.find('\0') != std::string_view::npos)
        throw Error(ErrorCode::InvalidArgument, "a name with a NUL byte has no object path");
    char* encoded = nullptr;
    int r = sd_bus_path_encode(segment_parent, std::string(name).c_str(), &encoded);
    if (r < 0)
        throw system_error(-r, "cannot make an object path segment");
    std::unique_ptr<char, decltype(&std::free)> owned(encoded, &std::free);
    return std::string(encoded + std::strlen(segment_parent) + 1);
}

std::string unescape_path_segment(std::string_view segment) {
    auto malformed = [&](std::string_view why) {
        return Error(ErrorCode::InvalidArgument,
                     fmt::format("malformed object path segment '{}': {}", segment, why));
    };
    for (char c : segment)
        if (c != '_' && !is_alnum(static_cast<unsigned char>(c)))
            throw malformed(fmt::format("'{}' is not allowed", c));
    std::string path = fmt::format("{}/{}", segment_parent, segment);
    if (segment.empty() || !sd_bus_object_path_is_valid(path.c_str()))
        throw malformed("it is not part of a valid object path");
    char* decoded = nullptr;
    int r = sd_bus_path_decode(path.c_str(), segment_parent, &decoded);
    if (r < 0)
        throw system_error(-r, fmt::format("cannot read the object path segment '{}'", segment));
    std::unique_ptr<char, decltype(&std::free)> owned(decoded, &std::free);
    if (r == 0 || decoded == nullptr)
        throw malformed("it is not under its parent path");
    // sd_bus_path_decode keeps a malformed escape ("a_1", "a_zz") as it is: only the segment
    // sd_bus_path_encode makes of a name is taken, so that each name has exactly one path.
    std::string name(decoded);
    if (escape_path_segment(name) != segment)
        throw malformed("it is not how sd_bus_path_encode writes any name");
    return name;
}

} // namespace vmstor
