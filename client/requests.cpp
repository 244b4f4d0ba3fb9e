#include "requests.hpp"

#include <algorithm>

#include "common/error.hpp"
#include "common/names.hpp"

namespace vmstor::client {

namespace {

constexpr std::string_view object_root = "/org/vmstor/Storage1";

void put_if_given(PropertyMap& map, const std::string& key, const std::string& value) {
    if (!value.empty())
        map[key] = value;
}

sdbus::Variant backing_value(const std::string& backing) {
    if (backing.starts_with('/'))
        return backing;
    auto slash = backing.find('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == backing.size() ||
        backing.find('/', slash + 1) != std::string::npos)
        throw Error(ErrorCode::InvalidArgument,
                    "invalid backing '" + backing + "': give it as POOL/VOLUME or as an absolute file path");
    return sdbus::ObjectPath(volume_object_path(backing.substr(0, slash), backing.substr(slash + 1)));
}

} // namespace

std::string pool_object_path(std::string_view pool) {
    return std::string(object_root) + "/pool/" + escape_path_segment(pool);
}

std::string volume_object_path(std::string_view pool, std::string_view volume) {
    return pool_object_path(pool) + "/volume/" + escape_path_segment(volume);
}

PropertyMap pool_definition(const PoolCreateRequest& request) {
    PropertyMap definition;
    put_if_given(definition, "target.path", request.target_path);
    if (!request.source_devices.empty())
        definition["source.device"] = request.source_devices;
    put_if_given(definition, "source.host", request.source_host);
    put_if_given(definition, "source.dir", request.source_dir);
    put_if_given(definition, "source.name", request.source_name);
    put_if_given(definition, "source.format", request.source_format);
    return definition;
}

PropertyMap pool_create_options(const PoolCreateRequest& request) {
    PropertyMap options;
    if (!request.build)
        options["build"] = false;
    if (!request.start)
        options["start"] = false;
    if (!request.autostart)
        options["autostart"] = false;
    return options;
}

PropertyMap volume_create_options(const VolumeCreateRequest& request) {
    PropertyMap options;
    put_if_given(options, "format", request.format);
    put_if_given(options, "preallocation", request.preallocation);
    if (request.cluster_size)
        options["cluster_size"] = *request.cluster_size;
    if (!request.backing.empty())
        options["backing"] = backing_value(request.backing);
    if (!request.backing_format.empty()) {
        if (request.backing.empty())
            throw Error(ErrorCode::InvalidArgument, "a backing format was given without a backing");
        options["backing_format"] = request.backing_format;
    }
    return options;
}

PropertyMap volume_resize_options(bool shrink) {
    PropertyMap options;
    if (shrink)
        options["shrink"] = true;
    return options;
}

std::string snapshot_object_path(std::string_view pool, std::string_view volume, std::string_view snapshot) {
    return volume_object_path(pool, volume) + "/snapshot/" + escape_path_segment(snapshot);
}

std::string job_object_path(std::string_view reference) {
    auto prefix = std::string(object_root) + "/job/";
    auto number = reference.starts_with(prefix) ? reference.substr(prefix.size()) : reference;
    bool digits = !number.empty() && number.size() <= 19 &&
                  std::all_of(number.begin(), number.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!digits)
        throw Error(ErrorCode::InvalidArgument,
                    "invalid job '" + std::string(reference) + "': give its number or its object path");
    return prefix + std::string(number);
}

PropertyMap copy_options(const CopyRequest& request) {
    PropertyMap options;
    put_if_given(options, "format", request.format);
    if (request.compress)
        options["compress"] = true;
    if (!request.compression_type.empty()) {
        if (!request.compress)
            throw Error(ErrorCode::InvalidArgument, "a compression type was given without --compress");
        options["compression_type"] = request.compression_type;
    }
    if (request.cluster_size)
        options["cluster_size"] = *request.cluster_size;
    if (request.no_sync)
        options["sync"] = false;
    return options;
}

PropertyMap transfer_options(const TransferRequest& request) {
    PropertyMap options;
    if (request.offset)
        options["offset"] = *request.offset;
    if (request.length)
        options["length"] = *request.length;
    if (request.sparse)
        options["sparse"] = true;
    return options;
}

PropertyMap import_options(const std::string& format, std::optional<std::uint64_t> cluster_size,
                           const TransferRequest& request) {
    if (request.offset)
        throw Error(ErrorCode::InvalidArgument, "an import always starts at offset 0");
    PropertyMap options = transfer_options(request);
    put_if_given(options, "format", format);
    if (cluster_size)
        options["cluster_size"] = *cluster_size;
    return options;
}

PropertyMap check_options(const std::string& repair) {
    PropertyMap options;
    put_if_given(options, "repair", repair);
    return options;
}

PropertyMap measure_options(const std::string& format, std::optional<std::uint64_t> cluster_size) {
    PropertyMap options;
    put_if_given(options, "format", format);
    if (cluster_size)
        options["cluster_size"] = *cluster_size;
    return options;
}

PropertyMap rebase_options(const std::string& backing_format, bool unsafe) {
    PropertyMap options;
    put_if_given(options, "backing_format", backing_format);
    if (unsafe)
        options["unsafe"] = true;
    return options;
}

} // namespace vmstor::client
