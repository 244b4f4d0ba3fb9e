#include "image_lock.hpp"

#include <fcntl.h>
#include <unistd.h>

namespace vmstor::storage {

namespace {
constexpr off_t qemu_lock_perm_base = 100;
constexpr off_t qemu_perm_write_bit = 1;
} // namespace

bool image_locked_for_writing(const std::string& path) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return false;
    struct flock probe {};
    probe.l_type = F_WRLCK;
    probe.l_whence = SEEK_SET;
    probe.l_start = qemu_lock_perm_base + qemu_perm_write_bit;
    probe.l_len = 1;
    int result = fcntl(fd, F_OFD_GETLK, &probe);
    close(fd);
    return result == 0 && probe.l_type != F_UNLCK;
}

} // namespace vmstor::storage
