// Builds the jobs of the data-moving methods: checks every argument on the main loop (so that a refused
// call changes nothing), then hands plain paths and options to the work that runs on a worker thread.
#pragma once

#include "job_registry.hpp"
#include "options.hpp"
#include "storage/service.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <sdbus-c++/Types.h>
#include <string>
#include <vector>

namespace vmstor::daemon {

/// @brief Throws NotAuthorized unless the caller may do something that needs manage-pools.
using RequireManagePools = std::function<void()>;

/// @brief Refuses (NotAuthorized) a volume of a pool with a directory whose file is a symlink, a hard
/// link or not a regular file: vmstord opens volume files only beneath their pool directory.
void check_volume_file(storage::StorageService& service, const storage::VolumeState& volume);

/// @brief Refuses a backing file outside every pool's target directory (after resolving symlinks and
/// `..`; a relative `backing` is taken from `base_dir`) unless `require_manage_pools` lets the caller.
void check_backing_path(const storage::StorageService& service, const std::string& backing,
                        const std::string& base_dir, const RequireManagePools& require_manage_pools);

/// @brief The option keys of a copy (Pool.CloneVolume, Volume.Convert), the job options included.
std::vector<OptionSpec> copy_option_keys();
/// @brief The option keys of a stream (Volume.Upload, Volume.Download), the job options included.
std::vector<OptionSpec> stream_option_keys();

/// @brief A copy of `source` as a new volume `name` in `target_pool` (Pool.CloneVolume, Volume.Convert),
/// or of its internal snapshot `snapshot` (an id; Snapshot.CloneTo), which must not change meanwhile.
JobSpec copy_volume_job(storage::StorageService& service, const storage::VolumeState& source,
                        const std::string& target_pool, const std::string& name, const Options& options,
                        std::string operation, const std::optional<std::string>& snapshot = std::nullopt);
/// @brief Volume.Wipe.
JobSpec wipe_volume_job(storage::StorageService& service, const storage::VolumeState& volume,
                        const Options& options);
/// @brief Volume.Upload: raw guest data from `fd` into the volume.
JobSpec upload_volume_job(storage::StorageService& service, const storage::VolumeState& volume,
                          sdbus::UnixFd fd, const Options& options);
/// @brief Volume.Download: the volume's guest data, raw, to `fd`.
JobSpec download_volume_job(storage::StorageService& service, const storage::VolumeState& volume,
                            sdbus::UnixFd fd, const Options& options);
/// @brief Pool.ImportVolume: a new volume whose guest data is read, raw, from `fd`.
JobSpec import_volume_job(storage::StorageService& service, const std::string& pool, const std::string& name,
                          sdbus::UnixFd fd, const Options& options);
/// @brief Volume.Commit: merge this qcow2 overlay into its backing file.
JobSpec commit_volume_job(storage::StorageService& service, const storage::VolumeState& overlay,
                          const Options& options);
/// @brief Volume.Rebase: put this qcow2 volume on another backing file (or none). A backing file
/// outside every pool needs `require_manage_pools`; without it, such a file is always refused.
JobSpec rebase_volume_job(storage::StorageService& service, const storage::VolumeState& volume,
                          const std::string& backing, const Options& options,
                          const RequireManagePools& require_manage_pools = {});
/// @brief Pool.Build.
JobSpec build_pool_job(storage::StorageService& service, const std::string& pool);

} // namespace vmstor::daemon
