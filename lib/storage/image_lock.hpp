// QEMU's image locking protocol (OFD byte-range locks of QEMU's file driver): is an image open for
// writing by a QEMU process, and the lock vmstord holds while it writes one so that QEMU cannot.
#pragma once

#include <string>

namespace vmstor::storage {

/// @brief True when another process holds QEMU's "write" permission lock on the image: QEMU takes a
/// shared OFD lock on byte 100 + the permission's bit number (BLK_PERM_WRITE is bit 1) for each
/// permission it holds. False when the file cannot be opened, and for an image vmstord itself is
/// writing under an ImageWriteLock.
bool image_locked_for_writing(const std::string& path);

/// @brief Holds, for its lifetime, the locks QEMU takes for a writer that shares no write: shared locks
/// on bytes 100 and 101 (consistent read, write) and 201 (write not shared). Throws Busy when another
/// process writes the image or refuses to share writing (a running VM, qemu-io, qemu-nbd).
class ImageWriteLock {
  public:
    explicit ImageWriteLock(const std::string& path);
    ~ImageWriteLock();
    ImageWriteLock(const ImageWriteLock&) = delete;
    ImageWriteLock& operator=(const ImageWriteLock&) = delete;

  private:
    std::string path_;
    int fd_ = -1;
};

} // namespace vmstor::storage
