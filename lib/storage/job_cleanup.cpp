// What vmstord does at its first connection to libvirt with the records of jobs that its last stop cut
// short: the block-device volumes they were filling and the temporary files they were writing are
// deleted, and each deletion is logged, so that no half-made volume ever looks complete.
#include "service.hpp"
#include "virt/errors.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fmt/format.h>
#include <libvirt/virterror.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

namespace vmstor::storage {

void StorageService::clean_up_after_jobs() {
    for (const auto& [id, record] : records_.load()) {
        if (record.uri != uri_)
            continue; // the record of a vmstord serving another libvirt
        try {
            clean_up_after_job(record);
            records_.remove(id);
        } catch (const vmstor::Error& e) {
            spdlog::error("cannot clean up after the job {} that was making volume '{}' of pool '{}' when "
                          "vmstord stopped (tried again at the next start): {}",
                          record.operation, record.volume, record.pool, e.what());
        }
    }
}

void StorageService::clean_up_after_job(const JobRecord& record) {
    const std::string job = fmt::format("{} (started {})", record.operation, record.started);
    if (record.kind == JobRecord::Kind::Temporary) {
        int dir = ::open(record.path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dir < 0 && errno != ENOENT)
            throw system_error(errno, fmt::format("cannot open the pool directory '{}'", record.path));
        // Only the temporary name the job made (never a path that could lead elsewhere).
        bool removed = dir >= 0 && ::unlinkat(dir, record.key.c_str(), 0) == 0;
        int err = errno;
        if (dir >= 0)
            ::close(dir);
        if (!removed && dir >= 0 && err != ENOENT)
            throw system_error(err, fmt::format("cannot remove '{}/{}'", record.path, record.key));
        if (removed)
            spdlog::warn("removed '{}/{}', the unfinished file of volume '{}' of pool '{}' that job {} was "
                         "writing when vmstord stopped",
                         record.path, record.key, record.volume, record.pool, job);
        if (virt::PoolHandle pool{virStoragePoolLookupByName(conn(), record.pool.c_str())})
            virStoragePoolRefresh(pool.get(), 0); // an inactive pool refuses; it lists no files then
        return;
    }
    virt::PoolHandle pool{virStoragePoolLookupByName(conn(), record.pool.c_str())};
    if (!pool)
        throw virt::last_error(fmt::format("cannot find pool '{}'", record.pool));
    if (virStoragePoolRefresh(pool.get(), 0) < 0)
        throw virt::last_error(fmt::format("cannot refresh pool '{}'", record.pool));
    virt::VolumeHandle volume{virStorageVolLookupByName(pool.get(), record.volume.c_str())};
    if (!volume) {
        if (virGetLastErrorCode() != VIR_ERR_NO_STORAGE_VOL)
            throw virt::last_error(fmt::format("cannot look up volume '{}'", record.volume));
        spdlog::info("volume '{}' of pool '{}', which job {} was filling when vmstord stopped, is gone",
                     record.volume, record.pool, job);
        return;
    }
    const char* key = virStorageVolGetKey(volume.get());
    // Without a key, libvirt was still making it when vmstord stopped: the name is the job's all the same.
    if (!record.key.empty() && (!key || record.key != key)) {
        spdlog::warn("volume '{}' of pool '{}' is not the one job {} was filling when vmstord stopped (its "
                     "key changed): left alone",
                     record.volume, record.pool, job);
        return;
    }
    if (virStorageVolDelete(volume.get(), 0) < 0)
        throw virt::last_error(
            fmt::format("cannot delete volume '{}' of pool '{}'", record.volume, record.pool));
    spdlog::warn("deleted volume '{}' of pool '{}' ({}): job {} was filling it when vmstord stopped, so it "
                 "was incomplete",
                 record.volume, record.pool, record.path.empty() ? "being made" : record.path, job);
}

} // namespace vmstor::storage
