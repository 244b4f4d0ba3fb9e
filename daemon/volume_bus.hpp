// Serves every Volume object through sd-bus directly, the way systemd serves its units: per pool, on the node
// "<pool path>/volume", a fallback vtable finds the volume of a path in an index and a node enumerator lists
// the pool's volumes (for GetManagedObjects and introspection). Both sit on the same node: sd-bus answers an
// Introspect with the nearest node that exists, so a fallback further up would not be asked. sdbus-c++ 1.2
// would build a vtable of std::functions and strings per object, ~11 KB per volume; here a volume costs its
// index entry.
#pragma once

#include "raw_bus.hpp"

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace vmstor::daemon {

class VolumeObject;

class VolumeBus {
  public:
    /// @brief Volumes are served on `connection`, whose ObjectManager at /org/vmstor/Storage1 lists them.
    explicit VolumeBus(sdbus::IConnection& connection);
    ~VolumeBus();
    VolumeBus(const VolumeBus&) = delete;
    VolumeBus& operator=(const VolumeBus&) = delete;

    /// @brief Serves `volume` at `path` and emits InterfacesAdded.
    void add(const std::string& path, VolumeObject& volume);
    /// @brief Emits InterfacesRemoved for `path` and stops serving it, if `volume` is what is served there.
    void remove(const std::string& path, const VolumeObject& volume);
    /// @brief Whether objects served elsewhere (snapshots) sit below the volume at `path`. They give its path
    /// a node of its own, which sd-bus answers an Introspect with: the volume is then served by an object
    /// vtable on that node instead of by its pool's fallback (never both, or GetManagedObjects would list
    /// the path twice).
    void set_has_children(const std::string& path, bool has_children);
    /// @brief Emits PropertiesChanged of the Volume interface at `path` with the current values of `names`.
    void properties_changed(const std::string& path, const std::vector<std::string>& names);

    const RawBus& raw() const { return raw_; }

  private:
    /// The parent node of one pool's volumes ("<pool path>/volume"): it serves and lists them.
    struct PoolNode {
        VolumeBus* bus = nullptr;
        std::string prefix; ///< "<pool path>/volume/"
        sd_bus_slot* fallback = nullptr;
        sd_bus_slot* enumerator = nullptr;
        std::size_t volumes = 0;
        ~PoolNode();
    };

    /// @brief Registers the node of the volumes at `parent` ("<pool path>/volume").
    std::unique_ptr<PoolNode> make_pool_node(std::string_view parent);
    static int find(sd_bus* bus, const char* path, const char* interface, void* userdata, void** found,
                    sd_bus_error* error);
    static int enumerate(sd_bus* bus, const char* prefix, void* userdata, char*** nodes, sd_bus_error* error);
    /// @brief "<pool path>/volume", the node above the volume at `path`.
    static std::string_view parent_of(std::string_view path);

    struct Served {
        VolumeObject* volume = nullptr;
        sd_bus_slot* own_node = nullptr; ///< the object vtable of a volume with children
    };

    RawBus raw_;
    std::map<std::string, Served, std::less<>> volumes_;                       ///< by object path
    std::map<std::string, std::unique_ptr<PoolNode>, std::less<>> pool_nodes_; ///< by node path
};

} // namespace vmstor::daemon
