// Serves every Volume object through sd-bus directly, the way systemd serves its units: one fallback vtable
// on the pools' prefix finds the volume of a path in an index, and one node enumerator per pool lists them
// (for GetManagedObjects and introspection). sdbus-c++ 1.2 would build a vtable of std::functions and
// strings per object, ~11 KB per volume; here a volume costs its index entry.
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
    /// @brief Registers the Volume interface under /org/vmstor/Storage1/pool on `connection`, whose
    /// ObjectManager at /org/vmstor/Storage1 then lists the volumes added here.
    explicit VolumeBus(sdbus::IConnection& connection);
    ~VolumeBus();
    VolumeBus(const VolumeBus&) = delete;
    VolumeBus& operator=(const VolumeBus&) = delete;

    /// @brief Serves `volume` at `path` and emits InterfacesAdded.
    void add(const std::string& path, VolumeObject& volume);
    /// @brief Emits InterfacesRemoved for `path` and stops serving it.
    void remove(const std::string& path);
    /// @brief Emits PropertiesChanged of the Volume interface at `path` with the current values of `names`.
    void properties_changed(const std::string& path, const std::vector<std::string>& names);

    const RawBus& raw() const { return raw_; }

  private:
    /// The parent node of one pool's volumes ("<pool path>/volume"), whose enumerator lists them.
    struct PoolNode {
        VolumeBus* bus = nullptr;
        std::string prefix; ///< "<pool path>/volume/"
        sd_bus_slot* enumerator = nullptr;
        std::size_t volumes = 0;
    };

    static int find(sd_bus* bus, const char* path, const char* interface, void* userdata, void** found,
                    sd_bus_error* error);
    static int enumerate(sd_bus* bus, const char* prefix, void* userdata, char*** nodes, sd_bus_error* error);
    /// @brief "<pool path>/volume", the node above the volume at `path`.
    static std::string_view parent_of(std::string_view path);

    RawBus raw_;
    sd_bus_slot* fallback_ = nullptr;
    std::map<std::string, VolumeObject*, std::less<>> volumes_;                ///< by object path
    std::map<std::string, std::unique_ptr<PoolNode>, std::less<>> pool_nodes_; ///< by node path
};

} // namespace vmstor::daemon
