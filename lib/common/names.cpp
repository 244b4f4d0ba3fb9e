#include "names.hpp"

#include "error.hpp"

#include <fmt/format.h>

namespace vmstor {

namespace {

bool is_alnum(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

constexpr std::size_t max_name_bytes = 255;

} // namespace

void validate_name(std::string_view kind, std::string_view name) {
    auto refuse = [&](std::string_view why) {
        return Error(ErrorCode::InvalidArgument, fmt::format("invalid {} name '{}': {}", kind, name, why));
    };
    if (name.empty())
        throw Error(ErrorCode::InvalidArgument, fmt::format("invalid {} name: the name is empty", kind));
    if (name.size() > max_name_bytes)
        throw Error(ErrorCode::InvalidArgument, fmt::format("invalid {} name: it is {} bytes long, the limit is {}",
                                                            kind, name.size(), max_name_bytes));
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
    if (name.empty())
        return "_";
    std::string out;
    out.reserve(name.size() * 3);
    for (unsigned char c : name) {
        if (is_alnum(c))
            out.push_back(static_cast<char>(c));
        else
            out += fmt::format("_{:02x}", c);
    }
    return out;
}

std::string unescape_path_segment(std::string_view segment) {
    if (segment == "_")
        return {};
    std::string out;
    for (std::size_t i = 0; i < segment.size(); ++i) {
        char c = segment[i];
        if (c != '_') {
            if (!is_alnum(static_cast<unsigned char>(c)))
                throw Error(ErrorCode::InvalidArgument,
                            fmt::format("malformed object path segment '{}': '{}' is not allowed", segment, c));
            out.push_back(c);
            continue;
        }
        int hi = i + 1 < segment.size() ? hex_value(segment[i + 1]) : -1;
        int lo = i + 2 < segment.size() ? hex_value(segment[i + 2]) : -1;
        if (hi < 0 || lo < 0)
            throw Error(ErrorCode::InvalidArgument,
                        fmt::format("malformed object path segment '{}': bad escape at byte {}", segment, i));
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
    }
    return out;
}

} // namespace vmstor
