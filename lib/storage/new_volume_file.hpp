// The file of a new volume that vmstord fills (create, clone, convert, import): it has no name in the
// pool directory until it is complete and durable, so that a job cut short (SIGKILL, a power cut) leaves
// nothing that libvirt would list as a volume.
#pragma once

#include "job_records.hpp"

#include <string>

namespace vmstor::storage {

class NewVolumeFile {
  public:
    /// @brief Makes the unnamed file of volume `name` in the pool directory `dir` with O_TMPFILE. Where
    /// the file system has no O_TMPFILE, makes a temporary name instead that `records` keeps until the
    /// file is published or removed, so that the next start of vmstord removes it after a crash.
    /// `record` describes the job (uri, pool, volume, operation).
    NewVolumeFile(const std::string& dir, const std::string& name, const JobRecords& records,
                  JobRecord record);
    /// @brief Unless published: the unnamed file vanishes with its descriptor; a temporary name is removed.
    ~NewVolumeFile();
    NewVolumeFile(const NewVolumeFile&) = delete;
    NewVolumeFile& operator=(const NewVolumeFile&) = delete;

    /// @brief The volume's final path (pool directory + name).
    const std::string& path() const { return path_; }
    const std::string& name() const { return name_; }
    int fd() const { return fd_; }
    /// @brief /proc/self/fd/N: the file itself, for the engine, which opens images by path.
    std::string engine_path() const;
    /// @brief True when the file system had no O_TMPFILE and the file has a temporary name.
    bool temporary_name() const { return !temporary_.empty(); }

    /// @brief Gives the complete file its name: syncs it (when `sync`), links it in under its final name
    /// (AlreadyExists when the name appeared meanwhile: nothing is replaced), then syncs the directory.
    void publish(bool sync = true);

  private:
    void remove_temporary() noexcept;

    const JobRecords& records_;
    std::string dir_;
    std::string name_;
    std::string path_;
    int dir_fd_ = -1;
    int fd_ = -1;
    std::string temporary_; ///< the temporary name, without O_TMPFILE
    std::string record_;    ///< the record of the temporary name
    bool published_ = false;
};

} // namespace vmstor::storage
