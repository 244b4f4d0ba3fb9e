// Reading and writing a caller's stream (the fd of an Upload, Download or ImportVolume) so that a peer
// that never reads or writes stalls only its own job: the wait is a poll(2) that looks at the job's
// cancel flag at least once a second, and no read or write blocks on the peer.
#pragma once

#include "job_context.hpp"

#include <cstddef>
#include <span>
#include <string>

namespace vmstor::storage {

class CallerStream {
  public:
    /// @brief `fd` stays the caller's (not closed here); `what` names it in errors ("download stream of x").
    CallerStream(int fd, const JobContext& context, std::string what);

    /// @brief Reads until `out` is full or the stream ends; returns the count. Throws Cancelled when the
    /// job is cancelled while it waits.
    std::size_t read_fully(std::span<std::byte> out);
    /// @brief Writes all of `data`. Throws Cancelled when the job is cancelled while it waits.
    void write_fully(std::span<const std::byte> data);

  private:
    /// @brief Waits until the fd is ready for `events` (or has an error, which the next call reports).
    void wait_for(short events);
    long nowait_read(std::span<std::byte> out);
    long nowait_write(std::span<const std::byte> data);

    int fd_;
    const JobContext& context_;
    std::string what_;
    /// A regular file or a block device: its reads and writes never wait for a peer.
    bool local_ = false;
    /// The kernel refused RWF_NOWAIT on this fd: after poll(2), writes go out a pipe buffer (PIPE_BUF) at a
    /// time, which a ready pipe takes without blocking.
    bool no_nowait_ = false;
};

} // namespace vmstor::storage
