#include "image_lock.hpp"

#include "common/error.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fmt/format.h>
#include <mutex>
#include <set>
#include <unistd.h>

namespace vmstor::storage {

namespace {
constexpr off_t qemu_lock_perm_base = 100;   // QEMU's RAW_LOCK_PERM_BASE: permissions held
constexpr off_t qemu_lock_shared_base = 200; // QEMU's RAW_LOCK_SHARED_BASE: permissions not shared
constexpr off_t qemu_perm_consistent_read_bit = 0;
constexpr off_t qemu_perm_write_bit = 1;

// Images vmstord is writing: their locks are its own, not another process's.
std::mutex held_mutex;
std::multiset<std::string> held_paths;

bool held_by_us(const std::string& path) {
    std::lock_guard lock(held_mutex);
    return held_paths.contains(path);
}

struct flock one_byte(short type, off_t byte) {
    struct flock lock {};
    lock.l_type = type;
    lock.l_whence = SEEK_SET;
    lock.l_start = byte;
    lock.l_len = 1;
    return lock;
}

/// @brief True when a process other than the holder of `fd`'s description has a lock on `byte`.
bool other_lock_on(int fd, off_t byte) {
    struct flock probe = one_byte(F_WRLCK, byte);
    return fcntl(fd, F_OFD_GETLK, &probe) == 0 && probe.l_type != F_UNLCK;
}

bool take_shared_lock(int fd, off_t byte) {
    struct flock lock = one_byte(F_RDLCK, byte);
    return fcntl(fd, F_OFD_SETLK, &lock) == 0;
}
} // namespace

bool image_locked_for_writing(const std::string& path) {
    if (held_by_us(path))
        return false;
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return false;
    bool locked = other_lock_on(fd, qemu_lock_perm_base + qemu_perm_write_bit);
    close(fd);
    return locked;
}

ImageWriteLock::ImageWriteLock(const std::string& path) : path_(path) {
    fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd_ < 0)
        throw vmstor::Error(ErrorCode::NotFound,
                            fmt::format("cannot open '{}' to lock it: {}", path, std::strerror(errno)));
    // As QEMU does: take our locks first, then look for conflicting ones, so that two writers starting
    // at once both see each other.
    bool taken = take_shared_lock(fd_, qemu_lock_perm_base + qemu_perm_consistent_read_bit) &&
                 take_shared_lock(fd_, qemu_lock_perm_base + qemu_perm_write_bit) &&
                 take_shared_lock(fd_, qemu_lock_shared_base + qemu_perm_write_bit);
    bool conflict = !taken || other_lock_on(fd_, qemu_lock_perm_base + qemu_perm_write_bit) ||
                    other_lock_on(fd_, qemu_lock_shared_base + qemu_perm_write_bit);
    if (conflict) {
        close(fd_);
        throw vmstor::Error(ErrorCode::Busy,
                            fmt::format("'{}' is in use: another process (QEMU) has it open for writing or "
                                        "does not let others write it",
                                        path));
    }
    std::lock_guard lock(held_mutex);
    held_paths.insert(path_);
}

ImageWriteLock::~ImageWriteLock() {
    {
        std::lock_guard lock(held_mutex);
        if (auto it = held_paths.find(path_); it != held_paths.end())
            held_paths.erase(it);
    }
    close(fd_); // closing the description releases its OFD locks
}

} // namespace vmstor::storage
