// Reaching an existing volume's file safely: opened beneath its pool directory without following a
// symlink, checked, and handed to the engine as that descriptor, so that a name swapped after the check
// is never used.
#pragma once

#include "qcow2/file.hpp"
#include "qcow2/image.hpp"

#include <memory>
#include <string>

namespace vmstor::storage {

/// @brief A volume file opened beneath its pool directory with openat2(RESOLVE_BENEATH |
/// RESOLVE_NO_SYMLINKS) and O_NOFOLLOW, so that neither a symlink nor `..` leads outside; a symlink or
/// anything but a regular file is refused (NotAuthorized). The engine reaches an existing file through
/// this descriptor (open_volume_image) and a file vmstord creates through engine_path() (/proc/self/fd/N),
/// so that a name swapped after the check cannot redirect it.
class VolumeFile {
  public:
    /// @brief Opens the existing file `path` (pool directory + volume name) with `flags` (O_RDONLY, O_RDWR).
    VolumeFile(const std::string& path, int flags);
    /// @brief Creates `name` in the pool directory `dir` (O_EXCL: AlreadyExists when the name is taken).
    static VolumeFile create(const std::string& dir, const std::string& name);
    ~VolumeFile();
    VolumeFile(VolumeFile&& other) noexcept;
    VolumeFile(const VolumeFile&) = delete;
    VolumeFile& operator=(const VolumeFile&) = delete;
    VolumeFile& operator=(VolumeFile&&) = delete;

    const std::string& path() const { return path_; }
    int fd() const { return fd_; }
    /// @brief /proc/self/fd/N: the opened file itself, whatever its name points at by now.
    std::string engine_path() const;

  private:
    VolumeFile(std::string dir, std::string name, int flags);

    std::string path_;
    int fd_ = -1;
};

/// @brief An existing volume's image as the engine should reach it.
struct VolumeImage {
    std::string path;   ///< the pool directory + the volume's name, or the device of a pool without one
    std::string format; ///< raw or qcow2
    /// The file lies in a pool directory (dir, fs, netfs pools): it is opened as a VolumeFile and the
    /// engine uses that descriptor. false: a device that libvirt made (logical, disk, iscsi pools; its
    /// path is often a symlink such as /dev/vg/lv), which the engine opens by its path.
    bool in_pool_directory = true;
};

/// @brief Opens the volume's image with the engine (`options.format` and `options.fd` are set here).
std::unique_ptr<qcow2::Image> open_volume_image(const VolumeImage& volume, qcow2::OpenOptions options);
/// @brief The volume's file for the engine's low-level readers (header, snapshot table).
qcow2::File open_volume_file(const VolumeImage& volume, bool writable);

} // namespace vmstor::storage
