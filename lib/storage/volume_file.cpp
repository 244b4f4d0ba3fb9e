#include "volume_file.hpp"

#include "common/error.hpp"

#include <cerrno>
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <utility>

namespace vmstor::storage {

namespace {

/// @brief openat2 beneath `dir_fd` without following any symlink; -1 with errno on failure.
int open_beneath(int dir_fd, const std::string& name, int flags, mode_t mode) {
    open_how how{};
    how.flags = static_cast<std::uint64_t>(flags | O_NOFOLLOW | O_CLOEXEC);
    how.mode = (flags & O_CREAT) ? mode : 0;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    long fd;
    do
        fd = ::syscall(SYS_openat2, dir_fd, name.c_str(), &how, sizeof how);
    while (fd < 0 && errno == EINTR);
    if (fd >= 0 || errno != ENOSYS)
        return static_cast<int>(fd);
    // No openat2 (a kernel before 5.6, valgrind): for one path component, openat with O_NOFOLLOW is the
    // same, so anything else is refused as openat2 would refuse it.
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos) {
        errno = EXDEV;
        return -1;
    }
    return ::openat(dir_fd, name.c_str(), flags | O_NOFOLLOW | O_CLOEXEC, mode);
}

std::pair<std::string, std::string> split_path(const std::string& path) {
    auto slash = path.rfind('/');
    if (slash == std::string::npos || slash + 1 == path.size())
        throw vmstor::Error(ErrorCode::InvalidArgument,
                            fmt::format("'{}' is not a path to a volume file", path));
    return {slash == 0 ? "/" : path.substr(0, slash), path.substr(slash + 1)};
}

} // namespace

VolumeFile::VolumeFile(const std::string& path, int flags)
    : VolumeFile(split_path(path).first, split_path(path).second, flags) {}

VolumeFile VolumeFile::create(const std::string& dir, const std::string& name) {
    return VolumeFile(dir, name, O_RDWR | O_CREAT | O_EXCL);
}

VolumeFile::VolumeFile(std::string dir, std::string name, int flags) : path_(dir + "/" + name) {
    int dir_fd = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0)
        throw system_error(errno, fmt::format("cannot open the pool directory '{}'", dir));
    fd_ = open_beneath(dir_fd, name, flags, 0600);
    int err = errno;
    ::close(dir_fd);
    auto refuse = [&](const std::string& why) {
        if (fd_ >= 0)
            ::close(fd_);
        return vmstor::Error(ErrorCode::NotAuthorized,
                             fmt::format("vmstord does not use '{}': {}", path_, why));
    };
    if (fd_ < 0) {
        if (err == ELOOP)
            throw refuse("it is a symbolic link (which could lead outside the pool directory)");
        if (err == EXDEV)
            throw refuse("it is not inside the pool directory");
        if (err == EEXIST)
            throw vmstor::Error(ErrorCode::AlreadyExists,
                                fmt::format("'{}' exists (made by another job or by hand)", path_));
        throw system_error(err, fmt::format("cannot open '{}'", path_));
    }
    struct stat st {};
    if (::fstat(fd_, &st) < 0) {
        err = errno;
        ::close(fd_);
        throw system_error(err, fmt::format("cannot read the status of '{}'", path_));
    }
    if (!S_ISREG(st.st_mode))
        throw refuse("it is not a regular file");
    // A second name for a file elsewhere (a hard link) would let a write reach outside the pool.
    if (st.st_nlink != 1)
        throw refuse(fmt::format("it has {} hard links", st.st_nlink));
    // vmstord keeps CAP_FSETID, so its writes would not clear these bits as an unprivileged write does:
    // a volume file never carries them (it could be made a setuid-root program through Upload).
    constexpr mode_t privilege_bits = S_ISUID | S_ISGID | S_ISVTX;
    if ((flags & O_ACCMODE) != O_RDONLY && (st.st_mode & privilege_bits) &&
        ::fchmod(fd_, st.st_mode & 0777) < 0) {
        err = errno;
        ::close(fd_);
        throw system_error(err,
                           fmt::format("cannot clear the setuid, setgid and sticky bits of '{}'", path_));
    }
}

VolumeFile::~VolumeFile() {
    if (fd_ >= 0)
        ::close(fd_);
}

VolumeFile::VolumeFile(VolumeFile&& other) noexcept
    : path_(std::move(other.path_)), fd_(std::exchange(other.fd_, -1)) {}

std::string VolumeFile::engine_path() const {
    return fmt::format("/proc/self/fd/{}", fd_);
}

std::unique_ptr<qcow2::Image> open_volume_image(const VolumeImage& volume, qcow2::OpenOptions options) {
    options.format = qcow2::parse_format(volume.format);
    if (!volume.in_pool_directory) {
        options.fd = -1;
        return qcow2::Image::open(volume.path, options);
    }
    // The engine keeps its own duplicate of the checked descriptor; this one closes on return.
    VolumeFile file(volume.path, options.writable ? O_RDWR : O_RDONLY);
    options.fd = file.fd();
    return qcow2::Image::open(volume.path, options);
}

qcow2::File open_volume_file(const VolumeImage& volume, bool writable) {
    qcow2::File::Mode mode = writable ? qcow2::File::Mode::ReadWrite : qcow2::File::Mode::ReadOnly;
    if (!volume.in_pool_directory)
        return qcow2::File(volume.path, mode);
    VolumeFile file(volume.path, writable ? O_RDWR : O_RDONLY);
    return qcow2::File(file.fd(), volume.path, mode);
}

} // namespace vmstor::storage
