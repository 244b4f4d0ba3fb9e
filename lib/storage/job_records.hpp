// What a job leaves to clean up if vmstord stops before the job ends (SIGKILL, the OOM killer, a power
// cut): one small JSON file per job in the state directory, written durably before the job makes
// anything, removed when the job completes or fails cleanly. vmstord reads them at its next start.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace vmstor::storage {

struct JobRecord {
    enum class Kind {
        Device,   ///< a block-device volume libvirt made for the job (disk, logical, iscsi pools)
        Temporary ///< a temporary file in a pool directory without O_TMPFILE
    };
    Kind kind = Kind::Device;
    std::string uri;       ///< the libvirt connection the pool belongs to
    std::string pool;      ///< the pool's name
    std::string volume;    ///< the name of the volume the job was making
    std::string operation; ///< the job's operation (pool-clone-volume, ...)
    std::string started;   ///< when the job started (UTC, ISO 8601)
    /// Device: its path, once libvirt made it (empty: libvirt was making it). Temporary: the pool
    /// directory.
    std::string path;
    /// Device: libvirt's key of the volume, once made. Temporary: the temporary file's name.
    std::string key;
};

class JobRecords {
  public:
    /// @brief Records in `state_directory`/jobs; an empty `state_directory` keeps none.
    explicit JobRecords(std::string state_directory);

    bool enabled() const { return !directory_.empty(); }
    /// @brief Writes a new record durably (file and directory synced); returns its id ("" when
    /// disabled). Throws vmstor::Error when it cannot be written: the job must not start unrecorded.
    std::string add(const JobRecord& record) const;
    /// @brief Replaces record `id` durably; throws vmstor::Error.
    void update(const std::string& id, const JobRecord& record) const;
    /// @brief Removes record `id`; a failure is logged (the next start then finds nothing to do).
    void remove(const std::string& id) const noexcept;
    /// @brief Every readable record with its id; a damaged one is logged and removed.
    std::vector<std::pair<std::string, JobRecord>> load() const;

  private:
    void write(const std::string& id, const JobRecord& record) const;

    std::string directory_;
};

/// @brief The current time as the records keep it.
std::string record_time_now();

} // namespace vmstor::storage
