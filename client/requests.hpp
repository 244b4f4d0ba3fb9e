// What the user asked for on the command line, turned into the D-Bus arguments of dbus-api.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dbus_json.hpp"

namespace vmstor::client {

/// @brief The object path of a pool, from its name.
std::string pool_object_path(std::string_view pool);

/// @brief The object path of a volume, from its pool's name and its own.
std::string volume_object_path(std::string_view pool, std::string_view volume);

/// @brief `vmstorctl pool-create` arguments beyond name and type; empty strings are "not given".
struct PoolCreateRequest {
    std::string target_path;
    std::vector<std::string> source_devices;
    std::string source_host;
    std::string source_dir;
    std::string source_name;
    std::string source_format;
    bool build = true;
    bool start = true;
    bool autostart = true;
};

/// @brief The `definition` argument of Manager.CreatePool: only the keys the user gave.
PropertyMap pool_definition(const PoolCreateRequest& request);

/// @brief The `options` argument of Manager.CreatePool: build/start/autostart only where the user turned
/// them off, so that the daemon's defaults (true) apply otherwise.
PropertyMap pool_create_options(const PoolCreateRequest& request);

/// @brief `vmstorctl vol-create` options; empty strings are "not given".
struct VolumeCreateRequest {
    std::string format;
    std::string preallocation;
    std::optional<std::uint64_t> cluster_size;
    std::string backing;
    std::string backing_format;
};

/// @brief The `options` argument of Pool.CreateVolume. A backing given as an absolute path is sent as a
/// path (s); one given as POOL/VOLUME is sent as that volume's object path (o). Throws InvalidArgument
/// for a backing that is neither, or for backing_format without backing.
PropertyMap volume_create_options(const VolumeCreateRequest& request);

/// @brief The `options` argument of Volume.Resize.
PropertyMap volume_resize_options(bool shrink);

/// @brief The object path of a volume's internal snapshot.
std::string snapshot_object_path(std::string_view pool, std::string_view volume, std::string_view snapshot);

/// @brief A job's object path from what the user typed: its number n or its whole path. Throws
/// InvalidArgument for anything else.
std::string job_object_path(std::string_view reference);

/// @brief `vmstorctl vol-clone` and `vol-convert` options; empty strings are "not given".
struct CopyRequest {
    std::string format;
    bool compress = false;
    std::string compression_type;
    std::optional<std::uint64_t> cluster_size;
    bool no_sync = false; ///< --no-sync: end without flushing the new volume to disk
};

/// @brief The `options` of Pool.CloneVolume, Volume.Convert and Snapshot.CloneTo. Throws InvalidArgument
/// for a compression type without --compress.
PropertyMap copy_options(const CopyRequest& request);

/// @brief `vmstorctl vol-upload`, `vol-download` and `vol-import` byte range and sparseness.
struct TransferRequest {
    std::optional<std::uint64_t> offset;
    std::optional<std::uint64_t> length;
    bool sparse = false;
};

/// @brief The `options` of Volume.Upload and Volume.Download.
PropertyMap transfer_options(const TransferRequest& request);

/// @brief The `options` of Pool.ImportVolume: `format` and `cluster_size` of the new volume, `length` and
/// `sparse` of the stream.
PropertyMap import_options(const std::string& format, std::optional<std::uint64_t> cluster_size,
                           const TransferRequest& request);

/// @brief The `options` of Volume.Check: `repair` only when asked for ("leaks" or "all").
PropertyMap check_options(const std::string& repair);

/// @brief The `options` of Volume.Measure.
PropertyMap measure_options(const std::string& format, std::optional<std::uint64_t> cluster_size);

/// @brief The `options` of Volume.Rebase.
PropertyMap rebase_options(const std::string& backing_format, bool unsafe);

} // namespace vmstor::client
