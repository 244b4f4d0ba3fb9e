#include "volume_bus.hpp"

#include "object_paths.hpp"
#include "volume_vtable.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fmt/format.h>
#include <new>
#include <sdbus-c++/Error.h>
#include <spdlog/spdlog.h>

namespace vmstor::daemon {

namespace {

/// @brief Throws for a failed sd-bus registration (the daemon cannot serve volumes without it).
void check(int result, std::string_view what) {
    if (result < 0)
        throw sdbus::Error("org.freedesktop.DBus.Error.Failed",
                           fmt::format("{}: {}", what, std::strerror(-result)));
}

/// @brief Signals are best effort, as with sdbus-c++'s objects: a bus that refuses one (at shutdown) is
/// logged, not fatal.
void note_signal(int result, std::string_view signal, const std::string& path) {
    if (result < 0)
        spdlog::debug("{} for {}: {}", signal, path, std::strerror(-result));
}

} // namespace

VolumeBus::VolumeBus(sdbus::IConnection& connection) : raw_(connection) {}

VolumeBus::~VolumeBus() {
    for (auto& [path, served] : volumes_)
        sd_bus_slot_unref(served.own_node);
}

VolumeBus::PoolNode::~PoolNode() {
    sd_bus_slot_unref(enumerator);
    sd_bus_slot_unref(fallback);
}

std::unique_ptr<VolumeBus::PoolNode> VolumeBus::make_pool_node(std::string_view parent) {
    auto node = std::make_unique<PoolNode>();
    node->bus = this;
    node->prefix = std::string(parent) + "/";
    const std::string path(parent);
    check(sd_bus_add_fallback_vtable(raw_.get(), &node->fallback, path.c_str(), volume_interface,
                                     volume_vtable(), &VolumeBus::find, this),
          "registering the Volume interface");
    check(sd_bus_add_node_enumerator(raw_.get(), &node->enumerator, path.c_str(), &VolumeBus::enumerate,
                                     node.get()),
          "registering the volumes of a pool");
    return node;
}

std::string_view VolumeBus::parent_of(std::string_view path) {
    return path.substr(0, path.rfind('/'));
}

void VolumeBus::add(const std::string& path, VolumeObject& volume) {
    std::string_view parent = parent_of(path);
    auto node = pool_nodes_.find(parent);
    if (node == pool_nodes_.end())
        node = pool_nodes_.emplace(std::string(parent), make_pool_node(parent)).first;
    auto [served, added] = volumes_.try_emplace(path);
    if (added)
        ++node->second->volumes;
    set_has_children(path, false); // a volume that replaces another starts without children
    served->second.volume = &volume;
    note_signal(sd_bus_emit_object_added(raw_.get(), path.c_str()), "InterfacesAdded", path);
}

void VolumeBus::remove(const std::string& path, const VolumeObject& volume) {
    auto served = volumes_.find(path);
    if (served == volumes_.end() || served->second.volume != &volume)
        return;
    // Emitted while the object is still found: the signal lists the interfaces it had.
    note_signal(sd_bus_emit_object_removed(raw_.get(), path.c_str()), "InterfacesRemoved", path);
    sd_bus_slot_unref(served->second.own_node);
    volumes_.erase(served);
    auto node = pool_nodes_.find(parent_of(path));
    if (node != pool_nodes_.end() && --node->second->volumes == 0)
        pool_nodes_.erase(node);
}

void VolumeBus::set_has_children(const std::string& path, bool has_children) {
    auto served = volumes_.find(path);
    if (served == volumes_.end() || (served->second.own_node != nullptr) == has_children)
        return;
    if (!has_children) {
        served->second.own_node = sd_bus_slot_unref(served->second.own_node);
        return;
    }
    check(sd_bus_add_object_vtable(raw_.get(), &served->second.own_node, path.c_str(), volume_interface,
                                   volume_vtable(), served->second.volume),
          "registering the Volume interface of a volume with snapshots");
}

void VolumeBus::properties_changed(const std::string& path, const std::vector<std::string>& names) {
    std::vector<char*> strv;
    for (const std::string& name : names)
        strv.push_back(const_cast<char*>(name.c_str())); // sd-bus takes char** but does not write
    strv.push_back(nullptr);
    note_signal(sd_bus_emit_properties_changed_strv(raw_.get(), path.c_str(), volume_interface, strv.data()),
                "PropertiesChanged", path);
}

int VolumeBus::find(sd_bus*, const char* path, const char*, void* userdata, void** found, sd_bus_error*) {
    auto& self = *static_cast<VolumeBus*>(userdata);
    auto served = self.volumes_.find(std::string_view(path));
    if (served == self.volumes_.end() || served->second.own_node)
        return 0;
    *found = served->second.volume;
    return 1;
}

int VolumeBus::enumerate(sd_bus*, const char*, void* userdata, char*** nodes, sd_bus_error*) {
    // sd-bus keeps only the nodes under the prefix it asks about, and frees the list with free().
    const auto& node = *static_cast<PoolNode*>(userdata);
    const auto& volumes = node.bus->volumes_;
    auto* list = static_cast<char**>(std::calloc(node.volumes + 1, sizeof(char*)));
    if (!list)
        return -ENOMEM;
    std::size_t n = 0;
    for (auto it = volumes.lower_bound(node.prefix);
         it != volumes.end() && n < node.volumes && it->first.starts_with(node.prefix); ++it) {
        list[n] = strdup(it->first.c_str());
        if (!list[n]) {
            for (std::size_t i = 0; i < n; ++i)
                std::free(list[i]);
            std::free(list);
            return -ENOMEM;
        }
        ++n;
    }
    *nodes = list;
    return 0;
}

} // namespace vmstor::daemon
