#include "stream_io.hpp"

#include <cerrno>
#include <climits>
#include <poll.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

namespace vmstor::storage {

namespace {

constexpr int poll_interval_ms = 250; // how soon a cancel is seen while the peer does nothing

} // namespace

CallerStream::CallerStream(int fd, const JobContext& context, std::string what)
    : fd_(fd), context_(context), what_(std::move(what)) {
    struct stat st {};
    local_ = ::fstat(fd, &st) == 0 && (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode));
}

void CallerStream::wait_for(short events) {
    for (;;) {
        context_.stop_if_cancelled(what_);
        pollfd entry{fd_, events, 0};
        int ready = ::poll(&entry, 1, poll_interval_ms);
        if (ready > 0)
            return; // ready, or an error or hang-up that the read or write reports
        if (ready < 0 && errno != EINTR)
            throw system_error(errno, "cannot wait for the " + what_);
    }
}

long CallerStream::nowait_read(std::span<std::byte> out) {
    if (!no_nowait_) {
        iovec vector{out.data(), out.size()};
        ssize_t n = ::preadv2(fd_, &vector, 1, -1, RWF_NOWAIT);
        if (n >= 0 || errno != EOPNOTSUPP)
            return n;
        no_nowait_ = true;
    }
    // After poll said readable, a read takes what is there without waiting for more.
    return ::read(fd_, out.data(), out.size());
}

long CallerStream::nowait_write(std::span<const std::byte> data) {
    if (!no_nowait_) {
        iovec vector{const_cast<std::byte*>(data.data()), data.size()};
        ssize_t n = ::pwritev2(fd_, &vector, 1, -1, RWF_NOWAIT);
        if (n >= 0 || errno != EOPNOTSUPP)
            return n;
        no_nowait_ = true;
    }
    return ::write(fd_, data.data(), std::min<std::size_t>(data.size(), PIPE_BUF));
}

std::size_t CallerStream::read_fully(std::span<std::byte> out) {
    std::size_t got = 0;
    while (got < out.size()) {
        auto rest = out.subspan(got);
        long n = 0;
        if (local_) {
            context_.stop_if_cancelled(what_);
            n = ::read(fd_, rest.data(), rest.size());
        } else {
            wait_for(POLLIN);
            n = nowait_read(rest);
        }
        if (n == 0)
            break;
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            throw system_error(errno, "cannot read the " + what_);
        }
        got += static_cast<std::size_t>(n);
    }
    return got;
}

void CallerStream::write_fully(std::span<const std::byte> data) {
    std::size_t put = 0;
    while (put < data.size()) {
        auto rest = data.subspan(put);
        long n = 0;
        if (local_) {
            n = ::write(fd_, rest.data(), rest.size());
        } else {
            wait_for(POLLOUT);
            n = nowait_write(rest);
        }
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            throw system_error(errno, "cannot write the " + what_);
        }
        put += static_cast<std::size_t>(n);
    }
}

} // namespace vmstor::storage
