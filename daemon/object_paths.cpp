#include "object_paths.hpp"

#include "common/error.hpp"
#include "common/names.hpp"

#include <fmt/format.h>
#include <string_view>

namespace vmstor::daemon {

namespace {
constexpr std::string_view pool_prefix = "/org/vmstor/Storage1/pool/";
constexpr std::string_view volume_infix = "/volume/";
} // namespace

std::string pool_path(const std::string& pool) {
    return std::string(pool_prefix) + escape_path_segment(pool);
}

std::string volume_path(const std::string& pool, const std::string& volume) {
    return pool_path(pool) + std::string(volume_infix) + escape_path_segment(volume);
}

std::string job_path(std::uint64_t id) {
    return fmt::format("{}/job/{}", root_path, id);
}

std::string pool_name_from_path(const std::string& path) {
    std::string_view rest(path);
    if (!rest.starts_with(pool_prefix) || rest.substr(pool_prefix.size()).find('/') != std::string_view::npos)
        throw vmstor::Error(ErrorCode::InvalidArgument, fmt::format("'{}' is not a pool object path", path));
    return unescape_path_segment(rest.substr(pool_prefix.size()));
}

std::pair<std::string, std::string> volume_names_from_path(const std::string& path) {
    std::string_view rest(path);
    if (!rest.starts_with(pool_prefix))
        throw vmstor::Error(ErrorCode::InvalidArgument,
                            fmt::format("'{}' is not a volume object path", path));
    rest.remove_prefix(pool_prefix.size());
    auto infix = rest.find(volume_infix);
    if (infix == std::string_view::npos ||
        rest.substr(infix + volume_infix.size()).find('/') != std::string_view::npos)
        throw vmstor::Error(ErrorCode::InvalidArgument,
                            fmt::format("'{}' is not a volume object path", path));
    return {unescape_path_segment(rest.substr(0, infix)),
            unescape_path_segment(rest.substr(infix + volume_infix.size()))};
}

} // namespace vmstor::daemon
