#include "requests.hpp"

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

} // namespace vmstor::client
