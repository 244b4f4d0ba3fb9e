#include "new_volume_file.hpp"

#include "common/error.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

namespace vmstor::storage {

namespace {

std::string make_temporary_name() {
    unsigned char bytes[8];
    if (::getrandom(bytes, sizeof bytes, 0) != static_cast<ssize_t>(sizeof bytes))
        throw system_error(errno, "cannot make a temporary file name");
    std::string name = ".vmstor-";
    for (unsigned char b : bytes)
        name += fmt::format("{:02x}", b);
    return name + ".part";
}

/// @brief errno values with which a file system or kernel says it has no O_TMPFILE.
bool no_tmpfile(int err) {
    return err == EOPNOTSUPP || err == EISDIR || err == EINVAL;
}

} // namespace

NewVolumeFile::NewVolumeFile(const std::string& dir, const std::string& name, const JobRecords& records,
                             JobRecord record)
    : records_(records), dir_(dir), name_(name), path_(dir + "/" + name) {
    dir_fd_ = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd_ < 0)
        throw system_error(errno, fmt::format("cannot open the pool directory '{}'", dir));
    auto fail = [&](const vmstor::Error& error) {
        ::close(dir_fd_);
        return error;
    };
    struct stat st {};
    // Refused at once rather than when the job ends; a symlink counts as taken, and is never followed.
    if (::fstatat(dir_fd_, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0)
        throw fail(vmstor::Error(ErrorCode::AlreadyExists,
                                 fmt::format("'{}' exists (made by another job or by hand)", path_)));
    fd_ = ::openat(dir_fd_, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd_ >= 0)
        return;
    if (!no_tmpfile(errno))
        throw fail(system_error(errno, fmt::format("cannot create a new file in '{}'", dir)));
    // No O_TMPFILE here (a network file system): a name only vmstord uses, recorded before it exists.
    try {
        temporary_ = make_temporary_name();
        record.kind = JobRecord::Kind::Temporary;
        record.path = dir;
        record.key = temporary_;
        record_ = records_.add(record);
    } catch (const vmstor::Error& e) {
        throw fail(e);
    }
    fd_ = ::openat(dir_fd_, temporary_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd_ < 0) {
        int err = errno;
        records_.remove(record_);
        throw fail(system_error(err, fmt::format("cannot create '{}/{}'", dir, temporary_)));
    }
    spdlog::debug("'{}' has no O_TMPFILE: volume '{}' is made as '{}' until complete", dir, name, temporary_);
}

NewVolumeFile::~NewVolumeFile() {
    if (fd_ >= 0)
        ::close(fd_);
    if (!published_)
        remove_temporary();
    if (dir_fd_ >= 0)
        ::close(dir_fd_);
}

void NewVolumeFile::remove_temporary() noexcept {
    if (temporary_.empty())
        return;
    if (::unlinkat(dir_fd_, temporary_.c_str(), 0) < 0 && errno != ENOENT)
        spdlog::warn("cannot remove the temporary file '{}/{}': {}", dir_, temporary_, std::strerror(errno));
    else
        records_.remove(record_);
}

std::string NewVolumeFile::engine_path() const {
    return fmt::format("/proc/self/fd/{}", fd_);
}

void NewVolumeFile::publish(bool sync) {
    if (sync && ::fsync(fd_) < 0)
        throw system_error(errno, fmt::format("cannot flush the new volume '{}'", path_));
    int rc;
    if (temporary_.empty()) {
        // An unnamed file gets a name through its /proc link (AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH).
        rc = ::linkat(AT_FDCWD, engine_path().c_str(), dir_fd_, name_.c_str(), AT_SYMLINK_FOLLOW);
    } else {
        rc = ::renameat2(dir_fd_, temporary_.c_str(), dir_fd_, name_.c_str(), RENAME_NOREPLACE);
        if (rc < 0 && errno == EINVAL) { // no RENAME_NOREPLACE: a link fails on a taken name just the same
            rc = ::linkat(dir_fd_, temporary_.c_str(), dir_fd_, name_.c_str(), 0);
            if (rc == 0)
                ::unlinkat(dir_fd_, temporary_.c_str(), 0);
        }
    }
    if (rc < 0) {
        int err = errno;
        if (err == EEXIST)
            throw vmstor::Error(
                ErrorCode::AlreadyExists,
                fmt::format("cannot give the new volume its name '{}': a file of that name "
                            "appeared while the job ran (made by hand or by another program); "
                            "it is left as it is and the new volume is dropped",
                            path_));
        throw system_error(err, fmt::format("cannot give the new volume its name '{}'", path_));
    }
    published_ = true;
    records_.remove(record_);
    if (sync && ::fsync(dir_fd_) < 0) {
        int err = errno;
        ::unlinkat(dir_fd_, name_.c_str(), 0); // the name just made: the job fails, so no volume stays
        throw system_error(err, fmt::format("cannot flush the directory '{}'", dir_));
    }
}

} // namespace vmstor::storage
