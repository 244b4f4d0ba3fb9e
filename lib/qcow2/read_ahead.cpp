#include "read_ahead.hpp"

#include "chain_status.hpp"

#include <algorithm>

namespace vmstor::qcow2 {

ReadAhead::ReadAhead(Image& source, std::uint64_t chunk, std::size_t depth, const std::atomic<bool>* cancel)
    : source_(source), size_(source.virtual_size()), chunk_(chunk), depth_(depth), cancel_(cancel) {
    thread_ = std::thread([this] {
        try {
            read_all();
        } catch (...) {
            std::lock_guard lock(mutex_);
            error_ = std::current_exception();
        }
        {
            std::lock_guard lock(mutex_);
            finished_ = true;
        }
        ready_.notify_all();
    });
}

ReadAhead::~ReadAhead() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    space_.notify_all();
    thread_.join();
}

bool ReadAhead::stopped() const {
    return stopping_ || (cancel_ && cancel_->load());
}

void ReadAhead::read_all() {
    for (std::uint64_t offset = 0; offset < size_;) {
        {
            std::lock_guard lock(mutex_);
            if (stopped())
                return; // the consumer checks the cancel flag itself and says why
        }
        const ChainStatus s =
            chain_block_status(source_, offset, std::min<std::uint64_t>(size_ - offset, 1ull << 30));
        if (s.zero) {
            push({offset, s.length, true, {}});
        } else {
            for (std::uint64_t pos = offset; pos < offset + s.length;) {
                const std::uint64_t n = std::min(chunk_, offset + s.length - pos);
                AlignedBuffer data = take_buffer(n);
                if (data.empty())
                    return; // stopping
                source_.read(pos, data);
                push({pos, n, false, std::move(data)});
                pos += n;
            }
        }
        offset += s.length;
    }
}

AlignedBuffer ReadAhead::take_buffer(std::size_t size) {
    std::unique_lock lock(mutex_);
    space_.wait(lock, [&] { return stopped() || queue_.size() < depth_; });
    if (stopped())
        return {};
    AlignedBuffer buffer;
    if (!spare_.empty()) {
        buffer = std::move(spare_.back());
        spare_.pop_back();
    }
    buffer.resize(size);
    return buffer;
}

void ReadAhead::push(Piece&& piece) {
    {
        std::unique_lock lock(mutex_);
        space_.wait(lock, [&] { return stopped() || queue_.size() < depth_; });
        if (stopped())
            return;
        queue_.push_back(std::move(piece));
    }
    ready_.notify_one();
}

bool ReadAhead::next(Piece& piece) {
    std::unique_lock lock(mutex_);
    ready_.wait(lock, [&] { return !queue_.empty() || finished_; });
    if (queue_.empty()) {
        if (error_)
            std::rethrow_exception(error_);
        return false;
    }
    piece = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    space_.notify_one();
    return true;
}

void ReadAhead::recycle(AlignedBuffer&& buffer) {
    if (buffer.capacity() == 0)
        return;
    std::lock_guard lock(mutex_);
    if (spare_.size() < depth_ + 1)
        spare_.push_back(std::move(buffer));
}

} // namespace vmstor::qcow2
