// Formats on record: a volume is read as the format it was created, imported or first seen with, never
// as what its content later looks like. A guest writes its raw disk's content; were the format probed
// at each refresh, a qcow2 header written there would make vmstord open a host file as its backing file
// (the class of CVE-2008-2004).
#include "common/error.hpp"
#include "service.hpp"

#include <algorithm>
#include <filesystem>
#include <spdlog/spdlog.h>

namespace vmstor::storage {

namespace {

/// @brief `path` with symlinks and "." / ".." resolved as far as it exists.
std::filesystem::path resolved(const std::string& path) {
    std::error_code error;
    std::filesystem::path out = std::filesystem::weakly_canonical(path, error);
    return error ? std::filesystem::path(path).lexically_normal() : out;
}

bool inside(const std::filesystem::path& path, const std::filesystem::path& directory) {
    auto [end, rest] = std::mismatch(directory.begin(), directory.end(), path.begin(), path.end());
    return end == directory.end() && rest != path.end();
}

} // namespace

void StorageService::record_format(const std::string& path, const std::string& format) {
    formats_[path] = format;
    formats_changed_ = true;
    save_formats();
}

void StorageService::apply_format_record(VolumeState& volume) {
    const bool files = writes_files(volume.pool);
    // What libvirt says now: a probe of the content for files, a partition type for devices.
    const std::string seen = files ? volume.format : (volume.format == "qcow2" ? "qcow2" : "raw");
    auto [record, first_sight] = formats_.try_emplace(volume.path, seen);
    if (first_sight) {
        formats_changed_ = true;
        spdlog::info("volume '{}' in pool '{}' is first seen as {}; that format is on record", volume.name,
                     volume.pool, seen);
    } else if (record->second != seen) {
        spdlog::debug("volume '{}' in pool '{}' looks like {} now; it stays {}", volume.name, volume.pool,
                      seen, record->second);
    }
    if (files || record->second != seen)
        volume.format = record->second;
    if (record->second != "qcow2")
        volume.backing_chain.clear(); // only a qcow2 image names a backing file
}

bool StorageService::backing_outside_pools(const VolumeState& volume) const {
    for (const auto& [backing, format] : volume.backing_chain)
        if (outside_pools(backing))
            return true;
    return false;
}

bool StorageService::inside_pool_directory(const std::string& path) const {
    const std::filesystem::path file = resolved(path);
    for (const auto& [name, pool] : pools_)
        if (!pool.target_path.empty() && inside(file, resolved(pool.target_path)))
            return true;
    return false;
}

bool StorageService::outside_pools(const std::string& path) const {
    if (inside_pool_directory(path))
        return false;
    const std::filesystem::path file = resolved(path);
    for (const auto& [pool, list] : volumes_)
        for (const auto& [name, volume] : list)
            if (!writes_files(pool) && resolved(volume.path) == file)
                return false;
    return true;
}

void StorageService::save_formats() {
    if (!formats_changed_)
        return;
    try {
        settings_.save_formats(formats_);
        formats_changed_ = false;
    } catch (const vmstor::Error& e) {
        spdlog::error("the formats on record are kept in memory only for now: {}", e.what());
    }
}

} // namespace vmstor::storage
