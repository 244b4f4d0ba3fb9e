// QEMU's image locking protocol, read-only side: is an image open for writing by a QEMU process?
#pragma once

#include <string>

namespace vmstor::storage {

/// @brief True when another process holds QEMU's "write" permission lock on the image: QEMU takes a
/// shared OFD lock on byte 100 + the permission's bit number (BLK_PERM_WRITE is bit 1) for each
/// permission it holds. False when the file cannot be opened.
bool image_locked_for_writing(const std::string& path);

} // namespace vmstor::storage
