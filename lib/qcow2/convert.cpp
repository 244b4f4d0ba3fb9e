// convert: copy guest data into a new image, skipping zero and unallocated ranges without reading
// them; -c compresses clusters on every core while one thread reads and writes them in order.
#include "aligned_buffer.hpp"
#include "chain_status.hpp"
#include "common/error.hpp"
#include "format.hpp"
#include "operations.hpp"
#include "qcow2_image.hpp"
#include "read_ahead.hpp"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <fmt/format.h>
#include <mutex>
#include <thread>
#include <utility>

namespace vmstor::qcow2 {

using namespace format;

namespace {

constexpr std::uint64_t chunk_size = 2ull << 20;

bool is_zero(std::span<const std::byte> data) {
    const std::byte* p = data.data();
    std::size_t n = data.size();
    while (n >= 8) {
        std::uint64_t v;
        std::memcpy(&v, p, 8);
        if (v)
            return false;
        p += 8;
        n -= 8;
    }
    while (n--)
        if (*p++ != std::byte{0})
            return false;
    return true;
}

class CompressPipeline;

class Converter {
  public:
    Converter(Image& source, Image& target, const ConvertOptions& options)
        : source_(source), target_(target), options_(options), size_(source.virtual_size()) {}

    void run();

  private:
    void check_cancel() const {
        if (options_.cancel && options_.cancel->load())
            throw Error(ErrorCode::Cancelled, "convert was cancelled");
    }
    void report(std::uint64_t done) const {
        if (options_.progress && size_ > 0)
            options_.progress(100.0 * static_cast<double>(done) / static_cast<double>(size_));
    }
    void run_plain();
    void write_data(std::uint64_t offset, std::span<const std::byte> data);
    void copy_compressed(std::uint64_t offset, std::uint64_t length);

    Image& source_;
    Image& target_;
    const ConvertOptions& options_;
    std::uint64_t size_;
    std::unique_ptr<CompressPipeline> pipeline_;
};

void Converter::write_data(std::uint64_t pos, std::span<const std::byte> data) {
    // Write only the non-zero parts, at the target's granularity (4 KiB for raw, like qemu-img -S).
    std::uint64_t grain = target_.format() == ImageFormat::Raw ? 4096 : target_.cluster_size();
    if (target_.format() == ImageFormat::Qcow2 && static_cast<Qcow2Image&>(target_).header().extended_l2())
        grain /= subclusters_per_cluster; // subclusters are allocated on their own
    const std::uint64_t n = data.size();
    std::uint64_t i = 0;
    while (i < n) {
        const std::uint64_t boundary = std::min(n, ((pos + i) / grain + 1) * grain - pos);
        const bool zero = is_zero(data.subspan(i, boundary - i));
        std::uint64_t j = boundary;
        while (j < n) {
            const std::uint64_t next = std::min(n, j + grain);
            if (is_zero(data.subspan(j, next - j)) != zero)
                break;
            j = next;
        }
        if (!zero)
            target_.write(pos + i, data.subspan(i, j - i));
        else if (options_.into_existing)
            target_.write_zeroes(pos + i, j - i);
        i = j;
    }
}

void Converter::run_plain() {
    // A reader thread keeps a few chunks ahead (8 MiB at most), so that reading the source and writing
    // the target overlap.
    ReadAhead ahead(source_, chunk_size, 4, options_.cancel);
    ReadAhead::Piece piece;
    while (ahead.next(piece)) {
        check_cancel();
        if (!piece.zero)
            write_data(piece.offset, piece.data);
        else if (options_.into_existing)
            target_.write_zeroes(piece.offset, piece.length);
        report(piece.offset + piece.length);
        ahead.recycle(std::move(piece.data));
    }
    check_cancel(); // a cancelled reader ends early: that is no finished copy
}

// Reads and compresses clusters on worker threads while the calling thread writes the finished ones in
// order, so that reading, compressing and writing overlap and the one thread that must be alone (the
// writer) has the least to do; at most `slots` clusters are in flight (that bounds the memory). The
// source is read under a mutex (an image is used by one thread at a time). The calling thread reads and
// compresses too while it would otherwise wait for the oldest cluster. Threads live for the whole
// convert: under load a new thread can wait long for a CPU.
class CompressPipeline {
  public:
    CompressPipeline(Image& source, Qcow2Image& target, CompressionType type, unsigned workers,
                     std::size_t slots)
        : source_(source), target_(target), type_(type), size_(source.virtual_size()),
          cluster_(target.cluster_size()), slots_(slots) {
        for (auto& slot : slots_)
            slot.input.resize(cluster_);
        for (unsigned i = 0; i < workers; ++i)
            threads_.emplace_back([this] { serve(); });
    }
    ~CompressPipeline() {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        work_.notify_all();
        for (auto& t : threads_)
            t.join();
    }

    /// @brief Queues guest cluster `gc` for reading and compression; writes finished clusters first
    /// while every slot is taken.
    void push(std::uint64_t gc) {
        while (pushed_ - written_ == slots_.size())
            write_oldest();
        Slot& slot = slots_[pushed_ % slots_.size()];
        slot.gc = gc;
        slot.done = false;
        bool wake;
        {
            std::lock_guard lock(mutex_);
            ++pushed_;
            wake = idle_workers_ > 0;
        }
        if (wake)
            work_.notify_one();
    }

    /// @brief Writes every cluster pushed so far.
    void drain() {
        while (written_ < pushed_)
            write_oldest();
    }

    /// @brief Held by anyone else who uses the source while the pipeline runs.
    std::mutex& source_mutex() { return source_mutex_; }

  private:
    struct Slot {
        std::uint64_t gc = 0;
        AlignedBuffer input;
        std::vector<std::byte> output; // empty: not smaller compressed, written as it is
        bool zero = false;
        bool done = false;
        std::exception_ptr error;
    };

    void serve() {
        std::unique_lock lock(mutex_);
        while (true) {
            if (stopping_)
                return;
            if (taken_ < pushed_) {
                compress_next(lock);
                continue;
            }
            ++idle_workers_;
            work_.wait(lock);
            --idle_workers_;
        }
    }

    /// @brief Takes the next cluster nobody has taken, reads and compresses it; `lock` is held on entry
    /// and exit.
    void compress_next(std::unique_lock<std::mutex>& lock) {
        Slot& slot = slots_[taken_++ % slots_.size()];
        lock.unlock();
        try {
            const std::uint64_t start = slot.gc * cluster_;
            const std::uint64_t bytes = std::min(cluster_, size_ - start);
            if (bytes < cluster_)
                std::fill(slot.input.begin() + static_cast<std::ptrdiff_t>(bytes), slot.input.end(),
                          std::byte{0});
            {
                std::lock_guard source_lock(source_mutex_);
                source_.read(start, std::span(slot.input).first(bytes));
            }
            slot.zero = is_zero(slot.input);
            if (!slot.zero) {
                // Into a buffer of the thread's own, then only the compressed bytes into the slot.
                thread_local std::vector<std::byte> scratch;
                scratch.resize(max_compressed_size(cluster_));
                const std::size_t n = compress_cluster(type_, slot.input, scratch);
                slot.output.assign(scratch.begin(), scratch.begin() + static_cast<std::ptrdiff_t>(n));
            }
        } catch (...) {
            slot.error = std::current_exception();
        }
        lock.lock();
        slot.done = true;
        if (writer_waiting_)
            done_.notify_one();
    }

    void write_oldest() {
        Slot& slot = slots_[written_ % slots_.size()];
        {
            std::unique_lock lock(mutex_);
            while (!slot.done) {
                if (taken_ < pushed_) {
                    compress_next(lock);
                    continue;
                }
                writer_waiting_ = true;
                done_.wait(lock);
                writer_waiting_ = false;
            }
        }
        ++written_;
        if (slot.error)
            std::rethrow_exception(std::exchange(slot.error, nullptr));
        if (slot.zero)
            return;
        const std::uint64_t guest = slot.gc * cluster_;
        if (slot.output.empty())
            target_.write(guest, std::span(slot.input).first(std::min(cluster_, size_ - guest)));
        else
            target_.write_compressed_data(slot.gc, slot.output);
        slot.output = {};
    }

    Image& source_;
    Qcow2Image& target_;
    const CompressionType type_;
    const std::uint64_t size_;
    const std::uint64_t cluster_;
    std::vector<Slot> slots_;
    std::uint64_t pushed_ = 0;    // clusters queued (compressing threads read it under the mutex)
    std::uint64_t taken_ = 0;     // clusters a thread took to read and compress (under the mutex)
    std::uint64_t written_ = 0;   // clusters written (the calling thread only)
    unsigned idle_workers_ = 0;   // workers waiting for work (under the mutex)
    bool writer_waiting_ = false; // the calling thread waits for a cluster to be done (under the mutex)
    std::vector<std::thread> threads_;
    std::mutex mutex_;
    std::mutex source_mutex_;
    std::condition_variable work_, done_;
    bool stopping_ = false;
};

void Converter::copy_compressed(std::uint64_t offset, std::uint64_t length) {
    const std::uint64_t cluster = target_.cluster_size();
    if (!pipeline_) {
        auto& qcow2 = static_cast<Qcow2Image&>(target_);
        const CompressionType type = qcow2.header().compression_type == compression_zstd
                                         ? CompressionType::Zstd
                                         : CompressionType::Zlib;
        // The calling thread compresses too: one worker fewer than cores keeps every core busy without
        // the switching that more threads than cores cost (measured: 4 workers on 2 cores, 25 % slower).
        const unsigned threads =
            options_.threads ? options_.threads : std::max(2u, std::thread::hardware_concurrency()) - 1;
        const std::size_t slots = std::max<std::uint64_t>(4 * threads, (2ull << 20) / cluster);
        pipeline_ = std::make_unique<CompressPipeline>(source_, qcow2, type, threads, slots);
    }
    // Whole clusters only: a range is widened to cluster boundaries (the extra bytes are read as they are).
    const std::uint64_t first = offset / cluster;
    const std::uint64_t last =
        std::min((offset + length + cluster - 1) / cluster, (size_ + cluster - 1) / cluster);
    for (std::uint64_t gc = first; gc < last; ++gc) {
        check_cancel();
        pipeline_->push(gc);
        if ((gc + 1) % 64 == 0)
            report(std::min(size_, (gc + 1) * cluster));
    }
}

void Converter::run() {
    if (!options_.compress) {
        run_plain();
    } else {
        const std::uint64_t cluster = target_.cluster_size();
        std::uint64_t offset = 0;
        std::uint64_t compress_from = 0; // compressed copying works on whole clusters: never twice the same
        while (offset < size_) {
            check_cancel();
            std::unique_lock<std::mutex> source_lock; // workers read the source meanwhile
            if (pipeline_)
                source_lock = std::unique_lock(pipeline_->source_mutex());
            ChainStatus s =
                chain_block_status(source_, offset, std::min<std::uint64_t>(size_ - offset, 1ull << 30));
            source_lock = {};
            if (!s.zero) {
                const std::uint64_t from = std::max(offset, compress_from);
                if (from < offset + s.length)
                    copy_compressed(from, offset + s.length - from);
                compress_from = (offset + s.length + cluster - 1) / cluster * cluster;
            }
            offset += s.length;
            report(offset);
        }
        if (pipeline_)
            pipeline_->drain();
    }
    if (options_.into_existing && target_.virtual_size() > size_)
        target_.write_zeroes(size_, target_.virtual_size() - size_); // a partition ends on its alignment
    target_.flush();
}

} // namespace

void Qcow2Image::write_compressed_data(std::uint64_t gc, std::span<const std::byte> compressed) {
    check_data_access();
    begin_write();
    prepare_l2_table(gc);
    const std::uint64_t host = allocate_bytes(compressed.size());
    guard_metadata_write(Metadata::Data, host, compressed.size());
    file_.write(host, compressed);
    const unsigned x = 62 - (header_.cluster_bits - 8);
    const std::uint64_t additional = ((host + compressed.size() - 1) >> 9) - (host >> 9);
    L2Entry old = get_l2_entry(gc);
    set_l2_entry(gc, {oflag_compressed | (additional << x) | host, 0});
    release_host_cluster(old, gc);
}

void Qcow2Image::write_compressed_cluster(std::uint64_t gc, std::span<const std::byte> data) {
    const std::uint64_t cluster = header_.cluster_size();
    if (data.size() != cluster)
        throw Error(ErrorCode::InvalidArgument, "compressed writes take exactly one whole cluster");
    std::vector<std::byte> compressed(max_compressed_size(cluster));
    const std::size_t size = compress_cluster(compression_, data, compressed);
    if (size == 0)
        return write(gc * cluster, data);
    write_compressed_data(gc, std::span(compressed).first(size));
}

void convert_image(Image& source, const std::string& target_path, const ConvertOptions& options) {
    CreateOptions create = options.target;
    create.size = source.virtual_size();
    if (options.compress && create.format != ImageFormat::Qcow2)
        throw Error(ErrorCode::NotSupported, "Compression not supported for this file format");
    if (options.into_existing && create.format != ImageFormat::Raw)
        throw Error(ErrorCode::NotSupported, "only a raw image can be written into an existing device");
    if (!options.into_existing)
        create_image(target_path, create);
    try {
        OpenOptions open;
        open.format = create.format;
        open.writable = true;
        open.open_backing = false;
        open.building = true;
        open.sync = options.sync;
        open.write_behind = options.sync; // no point starting writeback for a target that is never synced
        open.locking = options.target_locking;
        auto target = Image::open(target_path, open);
        if (options.into_existing && target->virtual_size() < create.size)
            throw Error(ErrorCode::InvalidArgument,
                        fmt::format("'{}' holds {} bytes, less than the {} of the source", target_path,
                                    target->virtual_size(), create.size));
        Converter(source, *target, options).run();
    } catch (...) {
        // A target that is not complete is no image: the file this convert made goes.
        if (!options.into_existing)
            remove_made_file(target_path);
        throw;
    }
}

} // namespace vmstor::qcow2
