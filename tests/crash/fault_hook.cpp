#include "fault_hook.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <fcntl.h>
#include <stdexcept>
#include <unistd.h>

namespace crash {

namespace {

void must(bool ok, const std::string& what) {
    if (!ok)
        throw std::runtime_error("crash_driver: " + what);
}

} // namespace

FaultHook::FaultHook(const FaultPlan& plan, std::uint64_t seed)
    : plan_(plan), rng_(seed ^ (plan.fail_at << 32)) {}

int FaultHook::before(Op op, const std::string& path, std::uint64_t offset, std::uint64_t length) {
    const bool is_sync = op == Op::Sync;
    const std::uint64_t n = is_sync ? ++syncs_ : ++writes_;
    if (!fired_ && plan_.fail_at != 0 && n == plan_.fail_at && is_sync == plan_.fail_sync) {
        fired_ = true;
        if (plan_.after != After::Close)
            crash();
        return EIO;
    }
    if (plan_.after == After::PowerLoss) {
        if (is_sync)
            std::erase_if(unsynced_, [&](const Undo& u) { return u.path == path; });
        else if (op == Op::Write || op == Op::PunchHole)
            remember(path, offset, length);
    }
    return 0;
}

void FaultHook::remember(const std::string& path, std::uint64_t offset, std::uint64_t length) {
    Undo u{path, offset, std::vector<std::byte>(length), false};
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    must(fd >= 0, "cannot open " + path);
    std::uint64_t done = 0;
    while (done < length) {
        const ssize_t n = ::pread(fd, u.old.data() + done, length - done, static_cast<off_t>(offset + done));
        must(n >= 0, "cannot read " + path);
        if (n == 0)
            break; // past the end: the old content reads as zeroes
        done += static_cast<std::uint64_t>(n);
    }
    ::close(fd);
    unsynced_.push_back(std::move(u));
}

void FaultHook::lose_unsynced() {
    for (auto& u : unsynced_)
        u.dropped = std::bernoulli_distribution(0.5)(rng_);
    for (std::size_t i = unsynced_.size(); i-- > 0;) {
        const Undo& u = unsynced_[i];
        if (!u.dropped)
            continue;
        // Bytes a later kept write covers keep that write's content.
        std::vector<bool> keep(u.old.size(), false);
        for (std::size_t j = i + 1; j < unsynced_.size(); ++j) {
            const Undo& later = unsynced_[j];
            if (later.dropped || later.path != u.path)
                continue;
            const std::uint64_t lo = std::max(u.offset, later.offset);
            const std::uint64_t hi = std::min(u.offset + u.old.size(), later.offset + later.old.size());
            for (std::uint64_t b = lo; b < hi; ++b)
                keep[b - u.offset] = true;
        }
        const int fd = ::open(u.path.c_str(), O_WRONLY | O_CLOEXEC);
        must(fd >= 0, "cannot open " + u.path);
        for (std::size_t b = 0; b < u.old.size();) {
            std::size_t end = b;
            while (end < u.old.size() && keep[end] == keep[b])
                ++end;
            if (!keep[b])
                must(::pwrite(fd, &u.old[b], end - b, static_cast<off_t>(u.offset + b)) ==
                         static_cast<ssize_t>(end - b),
                     "cannot write " + u.path);
            b = end;
        }
        ::close(fd);
    }
}

void FaultHook::crash() {
    if (plan_.after == After::PowerLoss)
        lose_unsynced();
    std::fputs("CRASH\n", stdout);
    std::fflush(stdout);
    ::_exit(0);
}

} // namespace crash
