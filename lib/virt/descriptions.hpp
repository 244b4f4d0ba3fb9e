// libvirt's storage XML, read and written with pugixml: what a pool or volume is, and how to define one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace vmstor::virt {

struct PoolSource {
    std::vector<std::string> devices;
    std::string host;
    std::string dir;
    std::string name;
    std::string format;
    std::string auth_secret; ///< UUID of a libvirt secret
    bool operator==(const PoolSource&) const = default;
};

struct Permissions {
    std::optional<std::uint32_t> mode;
    std::optional<std::uint32_t> owner;
    std::optional<std::uint32_t> group;
};

/// @brief What a pool's XML description says beyond virStoragePoolGetInfo.
struct PoolDescription {
    std::string name;
    std::string type;
    std::string target_path;
    PoolSource source;
};
PoolDescription parse_pool_xml(std::string_view xml);

/// @brief What a volume's XML description says beyond virStorageVolGetInfo.
struct VolumeDescription {
    std::string key;
    std::string path;
    std::uint64_t capacity = 0;
    std::uint64_t allocation = 0;
    std::uint64_t physical = 0; ///< size on the host (file size or device size)
    std::string format;
    std::vector<std::pair<std::string, std::string>> backing_chain; ///< (path, format), nearest first
    bool encrypted = false;
};
VolumeDescription parse_volume_xml(std::string_view xml);

struct PoolDefinition {
    std::string name;
    std::string type;
    std::string target_path;
    PoolSource source;
    Permissions permissions;
    std::optional<std::uint64_t> capacity;
};
std::string pool_xml(const PoolDefinition& definition);

struct VolumeDefinition {
    std::string name;
    std::uint64_t capacity = 0;
    std::uint64_t allocation = 0;
    std::string format;
    std::string compat; ///< qcow2 only: "0.10" or "1.1"
    bool lazy_refcounts = false;
    std::string backing_path;
    std::string backing_format;
    Permissions permissions;
};
std::string volume_xml(const VolumeDefinition& definition);

/// @brief A bare <source> element, as virConnectFindStoragePoolSources takes for a hint ("" if empty).
std::string source_xml(const std::string& type, const PoolSource& source);
/// @brief The <sources> list virConnectFindStoragePoolSources answers with.
std::vector<PoolSource> parse_pool_sources(std::string_view xml);

/// @brief Every disk path a domain's XML names: each disk's source file or device and, in a running
/// domain's live XML, the files of its backing chain. Disks given as <source pool= volume=> come back
/// as "pool/volume" pairs in `pool_volumes`.
struct DomainDisks {
    std::vector<std::string> paths;
    std::vector<std::pair<std::string, std::string>> pool_volumes;
};
DomainDisks parse_domain_disks(std::string_view xml);

/// @brief One pool type from virConnectGetStoragePoolCapabilities.
struct PoolTypeCapabilities {
    std::string type;
    bool supported = false;
    std::vector<std::string> source_formats;
    std::vector<std::string> volume_formats;
};
std::vector<PoolTypeCapabilities> parse_pool_capabilities(std::string_view xml);

/// @brief The definition keys a pool type cannot do without ("target.path", "source.device", ...).
std::vector<std::string> required_pool_fields(std::string_view type);

} // namespace vmstor::virt
