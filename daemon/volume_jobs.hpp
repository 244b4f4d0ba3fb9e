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

/// @brief Refuses (NotAuthorized) a volume of a pool with a directory whose file is a symlink, a hard
/// link or not a regular file: vmstord opens volume files only beneath their pool directory.
void check_volume_file(storage::StorageService& service, const storage::VolumeState& volume);

/// @brief When the backing file `backing` lies outside every pool's target directory (after resolving
/// symlinks and `..`; a relative `backing` is taken from `base_dir`), why that needs manage-pools;
/// nullopt inside a pool. Throws InvalidArgument when it does not exist.
std::optional<std::string> backing_outside_pools(const storage::StorageService& service,
                                                 const std::string& backing, const std::string& base_dir);

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
/// outside every pool is refused unless the caller was granted manage-pools for it.
JobSpec rebase_volume_job(storage::StorageService& service, const storage::VolumeState& volume,
                          const std::string& backing, const Options& options, bool manage_pools_granted);
/// @brief Pool.Build.
JobSpec build_pool_job(storage::StorageService& service, const std::string& pool);

} // namespace vmstor::daemon
