// QEMU's image locking for vmstord: is an image open for writing by a QEMU process, and the lock
// vmstord holds while it writes one so that QEMU cannot. One implementation, the engine's
// (qcow2/image_lock.hpp), serves vmstord and vmstor-img alike.
#pragma once

#include "qcow2/image_lock.hpp"

namespace vmstor::storage {

using qcow2::image_locked_for_writing;
using qcow2::ImageReadLock;
using qcow2::ImageWriteLock;

} // namespace vmstor::storage
