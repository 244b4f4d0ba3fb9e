#include "image_lock.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fmt/format.h>
#include <map>
#include <mutex>
#include <sys/stat.h>
#include <unistd.h>
#include <utility>
#include <vector>

namespace vmstor::qcow2 {

namespace {
constexpr off_t perm_base = 100;   // QEMU's RAW_LOCK_PERM_BASE: permissions held
constexpr off_t shared_base = 200; // QEMU's RAW_LOCK_SHARED_BASE: permissions not shared
constexpr unsigned perm_bits = 4;
constexpr const char* perm_names[perm_bits] = {"consistent read", "write", "write unchanged", "resize"};

struct flock one_byte(short type, off_t byte) {
    struct flock lock {};
    lock.l_type = type;
    lock.l_whence = SEEK_SET;
    lock.l_start = byte;
    lock.l_len = 1;
    return lock;
}

/// @brief True when another open file description than `fd`'s has a lock on `byte`.
bool other_lock_on(int fd, off_t byte) {
    struct flock probe = one_byte(F_WRLCK, byte);
    return fcntl(fd, F_OFD_GETLK, &probe) == 0 && probe.l_type != F_UNLCK;
}

/// The bytes a set of users needs: bits held (100+) and bits not shared (200+).
struct Bytes {
    unsigned held = 0;
    unsigned unshared = 0;
};

std::string conflict_message(const std::string& what, const std::string& path) {
    return fmt::format("{}\nIs another process using the image [{}]?", what, path);
}

/// @brief Locks the bytes of `want` that `have` lacks and unlocks those of `have` that `want` lacks.
/// Throws ImageLockConflict if a lock cannot be taken (another holds it exclusively).
void apply_bytes(int fd, Bytes have, Bytes want, const std::string& path) {
    for (unsigned bit = 0; bit < perm_bits; ++bit) {
        const unsigned mask = 1u << bit;
        for (auto [base, had, wanted] :
             {std::tuple{perm_base, have.held & mask, want.held & mask},
              std::tuple{shared_base, have.unshared & mask, want.unshared & mask}}) {
            if (had == wanted)
                continue;
            struct flock lock = one_byte(wanted ? F_RDLCK : F_UNLCK, base + bit);
            if (fcntl(fd, F_OFD_SETLK, &lock) != 0 && wanted)
                throw ImageLockConflict(
                    conflict_message(fmt::format("Failed to lock byte {}", base + bit), path));
        }
    }
}

/// @brief QEMU's check, in its order: each held permission against the others' "not shared" byte, each
/// permission not shared against the others' "held" byte.
void check_bytes(int fd, LockPerms perms, const std::string& path) {
    for (unsigned bit = 0; bit < perm_bits; ++bit) {
        const unsigned mask = 1u << bit;
        if ((perms.held & mask) && other_lock_on(fd, shared_base + bit))
            throw ImageLockConflict(
                conflict_message(fmt::format("Failed to get \"{}\" lock", perm_names[bit]), path));
        if (!(perms.shared & mask) && other_lock_on(fd, perm_base + bit))
            throw ImageLockConflict(
                conflict_message(fmt::format("Failed to get shared \"{}\" lock", perm_names[bit]), path));
    }
}

} // namespace

/// The lock description of one file in this process, and what each of its users holds.
struct ImageLock::Entry {
    std::pair<dev_t, ino_t> key;
    int fd = -1;
    std::vector<LockPerms> users;

    Bytes bytes() const {
        Bytes b;
        for (const LockPerms& u : users) {
            b.held |= u.held;
            b.unshared |= perm::all & ~u.shared;
        }
        return b;
    }
    ~Entry() {
        if (fd >= 0)
            close(fd); // closing the description releases whatever it still locks
    }
};

namespace {
std::mutex registry_mutex;
std::map<std::pair<dev_t, ino_t>, std::weak_ptr<ImageLock::Entry>> registry;

std::pair<dev_t, ino_t> file_key(int fd, const std::string& path) {
    struct stat st {};
    if (fstat(fd, &st) != 0)
        throw system_error(errno, fmt::format("cannot lock '{}'", path));
    return {st.st_dev, st.st_ino};
}
} // namespace

LockPerms image_lock_perms(ImageFormat format, bool writable, const LockOptions& locking) {
    LockPerms p;
    if (!locking.metadata_only)
        p.held |= perm::consistent_read;
    if (writable)
        p.held |= perm::write;
    if (format == ImageFormat::Qcow2) {
        if (writable)
            p.held |= perm::resize;
        p.shared = perm::all & ~(perm::write | perm::resize);
    } else if (writable && locking.resize) {
        p.held |= perm::resize;
    }
    if (locking.unshare_write)
        p.shared &= ~(perm::write | perm::resize);
    if (locking.force_share)
        p.shared = perm::all;
    return p;
}

ImageLock::ImageLock(int fd, const std::string& path, LockPerms perms, bool exclusive_here) : perms_(perms) {
    const auto key = file_key(fd, path);
    std::lock_guard guard(registry_mutex);
    std::shared_ptr<Entry> entry;
    if (auto it = registry.find(key); it != registry.end())
        entry = it->second.lock();
    if (!entry) {
        entry = std::make_shared<Entry>();
        entry->key = key;
        entry->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (entry->fd < 0)
            throw system_error(errno, fmt::format("cannot lock '{}'", path));
    }
    if (exclusive_here)
        for (const LockPerms& other : entry->users)
            if ((perms.held & ~other.shared) || (other.held & ~perms.shared))
                throw ImageLockConflict(
                    conflict_message("Failed to get a lock: this process uses the image", path));
    const Bytes before = entry->bytes();
    entry->users.push_back(perms);
    const Bytes after = entry->bytes();
    // As QEMU does: take the locks first, then look for conflicting ones, so that two processes
    // starting at once both see each other.
    try {
        apply_bytes(entry->fd, before, after, path);
        check_bytes(entry->fd, perms, path);
    } catch (...) {
        entry->users.pop_back();
        apply_bytes(entry->fd, after, before, path);
        throw;
    }
    registry[key] = entry;
    entry_ = std::move(entry);
}

ImageLock::~ImageLock() {
    std::lock_guard guard(registry_mutex);
    const Bytes before = entry_->bytes();
    for (auto it = entry_->users.begin(); it != entry_->users.end(); ++it) {
        if (it->held == perms_.held && it->shared == perms_.shared) {
            entry_->users.erase(it);
            break;
        }
    }
    try {
        apply_bytes(entry_->fd, before, entry_->bytes(), "");
    } catch (...) {
        // Unlocking cannot conflict; the description goes with the last user anyway.
    }
    if (entry_.use_count() == 1)
        registry.erase(entry_->key);
    entry_.reset();
}

std::unique_ptr<ImageLock> lock_opened_image(int fd, const std::string& path, ImageFormat format,
                                             const OpenOptions& options) {
    if (!options.locking)
        return nullptr;
    return std::make_unique<ImageLock>(fd, path,
                                       image_lock_perms(format, options.writable, *options.locking));
}

bool image_locked_for_writing(const std::string& path) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return false;
    bool locked = false;
    {
        std::lock_guard guard(registry_mutex);
        struct stat st {};
        std::shared_ptr<ImageLock::Entry> entry;
        if (fstat(fd, &st) == 0)
            if (auto it = registry.find({st.st_dev, st.st_ino}); it != registry.end())
                entry = it->second.lock();
        if (!entry || !(entry->bytes().held & perm::write)) // what this process writes is its own
            locked = other_lock_on(entry ? entry->fd : fd, perm_base + 1);
    }
    close(fd);
    return locked;
}

ImageUseLock::ImageUseLock(const std::string& path, Use use) {
    fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd_ < 0)
        throw vmstor::Error(ErrorCode::NotFound,
                            fmt::format("cannot open '{}' to lock it: {}", path, std::strerror(errno)));
    const bool write = use == Use::Write;
    try {
        lock_ = std::make_unique<ImageLock>(
            fd_, path,
            write ? LockPerms{perm::consistent_read | perm::write, perm::all & ~perm::write}
                  : LockPerms{perm::consistent_read, perm::all & ~(perm::write | perm::resize)},
            true);
    } catch (const ImageLockConflict&) {
        close(fd_);
        throw vmstor::Error(
            ErrorCode::Busy,
            fmt::format("'{}' is in use: another process (QEMU) has it open for {}", path,
                        write ? "writing or does not let others write it" : "writing or resizing"));
    } catch (...) {
        close(fd_);
        throw;
    }
}

ImageUseLock::~ImageUseLock() {
    lock_.reset();
    close(fd_);
}

} // namespace vmstor::qcow2
