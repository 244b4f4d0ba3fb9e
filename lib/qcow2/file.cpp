#include "file.hpp"

#include "aligned_buffer.hpp"
#include "common/error.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace vmstor::qcow2 {

namespace {

std::atomic<FaultInjection*> fault_hook{nullptr};

/// The errno of a failure the test hook injects into this operation, or 0.
int injected_error(FaultInjection::Op op, const std::string& path, std::uint64_t offset,
                   std::uint64_t length) {
    FaultInjection* hook = fault_hook.load(std::memory_order_acquire);
    return hook ? hook->before(op, path, offset, length) : 0;
}

} // namespace

void FaultInjection::install(FaultInjection* hook) {
    fault_hook.store(hook, std::memory_order_release);
}

File::File(const std::string& path, Mode mode) : path_(path) {
    int flags = O_CLOEXEC;
    switch (mode) {
    case Mode::ReadOnly:
        flags |= O_RDONLY;
        break;
    case Mode::ReadWrite:
        flags |= O_RDWR;
        break;
    case Mode::CreateExclusive:
        flags |= O_RDWR | O_CREAT | O_EXCL;
        break;
    case Mode::CreateTruncate:
        flags |= O_RDWR | O_CREAT | O_TRUNC;
        break;
    }
    writable_ = mode != Mode::ReadOnly;
    unsynced_ = writable_; // what others wrote before may not be durable yet: the first sync is real
    fd_ = ::open(path.c_str(), flags, 0644);
    if (fd_ < 0) {
        int err = errno;
        if (err == EEXIST)
            throw Error(ErrorCode::AlreadyExists, fmt::format("'{}' already exists", path));
        throw system_error(err, fmt::format("cannot open '{}'", path));
    }
    struct stat st {};
    if (::fstat(fd_, &st) == 0)
        block_device_ = S_ISBLK(st.st_mode);
}

File::File(int fd, const std::string& path, Mode mode) : path_(path) {
    if (mode != Mode::ReadOnly && mode != Mode::ReadWrite)
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("'{}': an open descriptor cannot be created", path));
    int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0)
        throw system_error(errno, fmt::format("cannot use the descriptor of '{}'", path));
    writable_ = mode == Mode::ReadWrite;
    unsynced_ = writable_;
    if (writable_ && (flags & O_ACCMODE) != O_RDWR)
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("'{}' is opened read-only and cannot be written", path));
    fd_ = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (fd_ < 0)
        throw system_error(errno, fmt::format("cannot use the descriptor of '{}'", path));
    struct stat st {};
    if (::fstat(fd_, &st) == 0)
        block_device_ = S_ISBLK(st.st_mode);
}

File File::image(const std::string& path, int fd, bool writable) {
    Mode mode = writable ? Mode::ReadWrite : Mode::ReadOnly;
    return fd >= 0 ? File(fd, path, mode) : File(path, mode);
}

File::~File() {
    if (fd_ >= 0)
        ::close(fd_);
}

void File::read_exact(std::uint64_t offset, std::span<std::byte> out, const char* what) const {
    std::size_t done = 0;
    while (done < out.size()) {
        ssize_t n = ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            throw system_error(errno, fmt::format("cannot read {} of '{}'", what, path_));
        }
        if (n == 0)
            throw Error(ErrorCode::Corrupt, fmt::format("'{}': {} at offset {} lies past the end of the file",
                                                        path_, what, offset));
        done += static_cast<std::size_t>(n);
    }
}

void File::read_or_zero(std::uint64_t offset, std::span<std::byte> out) const {
    std::size_t done = 0;
    while (done < out.size()) {
        ssize_t n = ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            throw system_error(errno, fmt::format("cannot read '{}'", path_));
        }
        if (n == 0)
            break;
        done += static_cast<std::size_t>(n);
    }
    if (done < out.size())
        std::memset(out.data() + done, 0, out.size() - done);
}

void File::write(std::uint64_t offset, std::span<const std::byte> data) {
    if (int err = injected_error(FaultInjection::Op::Write, path_, offset, data.size()))
        throw system_error(err, fmt::format("cannot write to '{}'", path_));
    unsynced_ = true;
    write_data(offset, data);
    if (write_behind_window_)
        start_writeback(offset, data.size());
}

void File::write_data(std::uint64_t offset, std::span<const std::byte> data) {
    std::size_t done = 0;
    while (done < data.size()) {
        ssize_t n = ::pwrite(fd_, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            throw system_error(errno, fmt::format("cannot write to '{}'", path_));
        }
        done += static_cast<std::size_t>(n);
    }
}

void File::start_writeback(std::uint64_t offset, std::uint64_t length) {
    pending_ += length;
    pending_begin_ = std::min(pending_begin_, offset);
    pending_end_ = std::max(pending_end_, offset + length);
    if (pending_ < write_behind_window_)
        return;
    // Only starts the writeback: the caller goes on while the disk works. Errors are not lost:
    // fdatasync() in sync() reports them.
    ::sync_file_range(fd_, static_cast<off_t>(pending_begin_),
                      static_cast<off_t>(pending_end_ - pending_begin_), SYNC_FILE_RANGE_WRITE);
    pending_ = 0;
    pending_begin_ = UINT64_MAX;
    pending_end_ = 0;
}

void File::punch_hole(std::uint64_t offset, std::uint64_t length) {
    if (length == 0)
        return;
    if (int err = injected_error(FaultInjection::Op::PunchHole, path_, offset, length))
        throw system_error(err, fmt::format("cannot zero a range of '{}'", path_));
    unsynced_ = true;
    if (block_device_) {
        std::uint64_t range[2] = {offset, length};
        if (::ioctl(fd_, BLKZEROOUT, range) != 0)
            throw system_error(errno, fmt::format("cannot zero a range of '{}'", path_));
        return;
    }
    if (::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                    static_cast<off_t>(length)) == 0)
        return;
    // A file system without hole punching: write zeroes instead.
    alignas(4096) static const std::byte zeroes[65536] = {};
    for (std::uint64_t done = 0; done < length;) {
        std::uint64_t chunk = std::min<std::uint64_t>(sizeof zeroes, length - done);
        write(offset + done, std::span(zeroes, chunk));
        done += chunk;
    }
}

void File::allocate(std::uint64_t offset, std::uint64_t length) {
    if (length == 0)
        return;
    int rc = injected_error(FaultInjection::Op::Allocate, path_, offset, length);
    unsynced_ = true;
    if (rc == 0)
        rc = ::posix_fallocate(fd_, static_cast<off_t>(offset), static_cast<off_t>(length));
    if (rc != 0)
        throw system_error(rc, fmt::format("cannot allocate space in '{}'", path_));
}

void File::write_zeroes(std::uint64_t offset, std::uint64_t length) {
    const AlignedBuffer zeroes(std::min<std::uint64_t>(length, 1u << 20));
    for (std::uint64_t done = 0; done < length;) {
        const std::uint64_t chunk = std::min<std::uint64_t>(zeroes.size(), length - done);
        write(offset + done, std::span(zeroes).first(chunk));
        done += chunk;
    }
}

void File::zero_range(std::uint64_t offset, std::uint64_t length) {
    if (length == 0)
        return;
    if (int err = injected_error(FaultInjection::Op::Write, path_, offset, length))
        throw system_error(err, fmt::format("cannot write to '{}'", path_));
    unsynced_ = true;
    if (!block_device_ &&
        ::fallocate(fd_, FALLOC_FL_ZERO_RANGE, static_cast<off_t>(offset), static_cast<off_t>(length)) == 0)
        return;
    write_zeroes(offset, length); // a block device or a file system without it
}

std::uint64_t File::copy_from(int source, std::uint64_t source_offset, std::uint64_t offset,
                              std::uint64_t length) {
    if (int err = injected_error(FaultInjection::Op::Write, path_, offset, length))
        throw system_error(err, fmt::format("cannot write to '{}'", path_));
    unsynced_ = true;
    std::uint64_t done = 0;
    bool in_kernel = true;
    AlignedBuffer buffer;
    while (done < length) {
        auto in = static_cast<loff_t>(source_offset + done);
        auto out = static_cast<loff_t>(offset + done);
        ssize_t n = -1;
        if (in_kernel) {
            n = ::copy_file_range(source, &in, fd_, &out, length - done, 0);
            // Another file system, or one that cannot: copy through a buffer instead.
            if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) {
                in_kernel = false;
                continue;
            }
        } else {
            buffer.resize(std::min<std::uint64_t>(length, 1u << 20));
            n = ::pread(source, buffer.data(), std::min<std::uint64_t>(buffer.size(), length - done), in);
            if (n > 0) {
                const std::uint64_t got = static_cast<std::uint64_t>(n);
                write_data(offset + done, std::span(buffer).first(got));
            }
        }
        if (n == 0)
            break;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            throw system_error(errno, fmt::format("cannot copy into '{}'", path_));
        }
        done += static_cast<std::uint64_t>(n);
    }
    if (write_behind_window_ && done > 0)
        start_writeback(offset, done);
    return done;
}

void File::truncate(std::uint64_t size) {
    if (block_device_)
        return;
    if (int err = injected_error(FaultInjection::Op::Truncate, path_, size, 0))
        throw system_error(err, fmt::format("cannot resize '{}'", path_));
    unsynced_ = true;
    if (::ftruncate(fd_, static_cast<off_t>(size)) != 0)
        throw system_error(errno, fmt::format("cannot resize '{}'", path_));
}

void File::sync_pending() {
    if (unsynced_)
        sync();
}

void File::sync() {
    if (int err = injected_error(FaultInjection::Op::Sync, path_, 0, 0))
        throw system_error(err, fmt::format("cannot flush '{}'", path_));
    if (::fdatasync(fd_) != 0)
        throw system_error(errno, fmt::format("cannot flush '{}'", path_));
    unsynced_ = false;
}

std::uint64_t File::size() const {
    if (block_device_) {
        std::uint64_t bytes = 0;
        if (::ioctl(fd_, BLKGETSIZE64, &bytes) != 0)
            throw system_error(errno, fmt::format("cannot get the size of '{}'", path_));
        return bytes;
    }
    struct stat st {};
    if (::fstat(fd_, &st) != 0)
        throw system_error(errno, fmt::format("cannot stat '{}'", path_));
    return static_cast<std::uint64_t>(st.st_size);
}

std::uint64_t File::allocated_bytes() const {
    struct stat st {};
    if (::fstat(fd_, &st) != 0)
        throw system_error(errno, fmt::format("cannot stat '{}'", path_));
    return static_cast<std::uint64_t>(st.st_blocks) * 512;
}

std::uint64_t File::next_data(std::uint64_t offset) const {
    off_t pos = ::lseek(fd_, static_cast<off_t>(offset), SEEK_DATA);
    if (pos < 0)
        return errno == ENXIO ? std::max(offset, size()) : offset;
    return static_cast<std::uint64_t>(pos);
}

std::uint64_t File::next_hole(std::uint64_t offset) const {
    off_t pos = ::lseek(fd_, static_cast<off_t>(offset), SEEK_HOLE);
    if (pos < 0)
        return errno == ENXIO ? offset : size();
    return static_cast<std::uint64_t>(pos);
}

bool File::is_hole(std::uint64_t offset, std::uint64_t length) const {
    if (block_device_)
        return false;
    return next_data(offset) >= offset + length;
}

} // namespace vmstor::qcow2
