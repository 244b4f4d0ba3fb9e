// Reading an image's guest data ahead of the one who writes it elsewhere (convert).
#pragma once

#include "aligned_buffer.hpp"
#include "image.hpp"

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace vmstor::qcow2 {

/// @brief Reads the guest data of `source` in order on a thread of its own: the block status of the
/// chain first, then each data range in pieces of up to `chunk` bytes, with at most `depth` pieces
/// waiting, so that reading and writing overlap (qemu-img convert keeps several requests in flight for
/// the same reason). Ranges that are zero or unallocated are never read: they come as zero pieces. The
/// source must not be used by anyone else meanwhile.
class ReadAhead {
  public:
    struct Piece {
        std::uint64_t offset = 0;
        std::uint64_t length = 0;
        bool zero = false;  ///< reads as zeroes; `data` is empty
        AlignedBuffer data; ///< `length` bytes of guest data unless `zero`
    };

    ReadAhead(Image& source, std::uint64_t chunk, std::size_t depth, const std::atomic<bool>* cancel);
    ~ReadAhead();
    ReadAhead(const ReadAhead&) = delete;
    ReadAhead& operator=(const ReadAhead&) = delete;

    /// @brief The next piece in guest order; false after the last one. Rethrows the reader's error.
    bool next(Piece& piece);
    /// @brief Hands a piece's buffer back for the reader to fill again.
    void recycle(AlignedBuffer&& buffer);

  private:
    void read_all();
    void push(Piece&& piece);
    AlignedBuffer take_buffer(std::size_t size);
    bool stopped() const;

    Image& source_;
    const std::uint64_t size_;
    const std::uint64_t chunk_;
    const std::size_t depth_;
    const std::atomic<bool>* cancel_;
    std::mutex mutex_;
    std::condition_variable ready_; // a piece was queued, or the reader ended
    std::condition_variable space_; // a piece was taken, or the consumer is gone
    std::deque<Piece> queue_;
    std::vector<AlignedBuffer> spare_;
    bool finished_ = false;
    bool stopping_ = false;
    std::exception_ptr error_;
    std::thread thread_;
};

} // namespace vmstor::qcow2
