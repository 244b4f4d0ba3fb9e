// QEMU's image locking protocol, as QEMU 7.2's file driver speaks it: for each permission a process
// holds on an image file it takes a shared OFD lock on byte 100 + the permission's bit, and for each
// permission it does not let others have, one on byte 200 + the bit. A process may open an image when
// no other holds a "not shared" byte of a permission it wants, and no other holds a permission it does
// not share. vmstor-img (as qemu-img does) and vmstord lock through this one implementation.
#pragma once

#include "common/error.hpp"
#include "image.hpp"

#include <cstdint>
#include <memory>
#include <string>

namespace vmstor::qcow2 {

/// QEMU's block permissions (BLK_PERM_*), by bit.
namespace perm {
inline constexpr unsigned consistent_read = 1u << 0;
inline constexpr unsigned write = 1u << 1;
inline constexpr unsigned write_unchanged = 1u << 2;
inline constexpr unsigned resize = 1u << 3;
inline constexpr unsigned all = consistent_read | write | write_unchanged | resize;
} // namespace perm

/// What one user of an image file holds, and what it lets other users hold.
struct LockPerms {
    unsigned held = 0;
    unsigned shared = perm::all;
};

/// @brief The permissions qemu-img 7.2 takes on the file of an image it opens as `format` with
/// `locking` (a qcow2 file never shares write or resize: its metadata would change underneath).
LockPerms image_lock_perms(ImageFormat format, bool writable, const LockOptions& locking);

/// @brief The permissions of qemu-img create (and the convert target's creation) on an existing file.
inline constexpr LockPerms create_lock_perms{perm::write | perm::resize, perm::all & ~perm::resize};

/// A conflicting lock of another process. Its message is QEMU's ("Failed to get "write" lock", then
/// "Is another process using the image [PATH]?" on a line of its own), which callers prefix as qemu-img.
class ImageLockConflict : public Error {
  public:
    explicit ImageLockConflict(const std::string& message) : Error(ErrorCode::Busy, message) {}
};

/// Holds QEMU's lock bytes for one user of an image file, for its lifetime. The users of one file
/// within this process share one open file description for their locks (the union of what they hold
/// and do not share), so they never conflict with each other through the kernel, only with other
/// processes; the bytes one user needed are unlocked when the last user needing them goes.
class ImageLock {
  public:
    /// @brief Locks the file open as `fd` (the caller keeps its descriptor; a duplicate of the first
    /// one of a file carries the locks). Throws ImageLockConflict naming `path` when another process
    /// holds the file in a conflicting way; with `exclusive_here`, also when another user in this
    /// process holds what this one does not share, or does not share what this one holds.
    ImageLock(int fd, const std::string& path, LockPerms perms, bool exclusive_here = false);
    ~ImageLock();
    ImageLock(const ImageLock&) = delete;
    ImageLock& operator=(const ImageLock&) = delete;

    struct Entry;

  private:
    std::shared_ptr<Entry> entry_;
    LockPerms perms_;
};

/// @brief The lock of an image the engine opens as `format` on `fd`: none unless `options.locking`.
std::unique_ptr<ImageLock> lock_opened_image(int fd, const std::string& path, ImageFormat format,
                                             const OpenOptions& options);

/// @brief True when another process holds QEMU's "write" permission lock on the image (byte 101).
/// False when the file cannot be opened, and for an image this process holds for writing.
bool image_locked_for_writing(const std::string& path);

/// vmstord's lock while it uses an image, for its lifetime. Throws Busy when another process holds the image
/// in a conflicting way, or when this process already holds it so.
class ImageUseLock {
  public:
    enum class Use {
        /// QEMU's bytes of a writer that shares no write (held: consistent read and write; not shared:
        /// write): refused while a running VM, qemu-io or qemu-nbd writes the image or refuses to share
        /// writing.
        Write,
        /// QEMU's bytes of qemu-img convert's source (held: consistent read; not shared: write, resize):
        /// refused while another process writes or resizes the image. Readers share it.
        Read,
    };
    ImageUseLock(const std::string& path, Use use);
    ~ImageUseLock();
    ImageUseLock(const ImageUseLock&) = delete;
    ImageUseLock& operator=(const ImageUseLock&) = delete;

  private:
    int fd_ = -1;
    std::unique_ptr<ImageLock> lock_;
};

/// vmstord's lock while it writes an image.
struct ImageWriteLock : ImageUseLock {
    explicit ImageWriteLock(const std::string& path) : ImageUseLock(path, Use::Write) {}
};

/// vmstord's lock while a job reads an image that must not change meanwhile (a copy's source).
struct ImageReadLock : ImageUseLock {
    explicit ImageReadLock(const std::string& path) : ImageUseLock(path, Use::Read) {}
};

} // namespace vmstor::qcow2
