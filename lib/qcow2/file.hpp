// A host file or block device opened for positioned I/O; every failure becomes vmstor::Error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace vmstor::qcow2 {

/// @brief Test-only hook (tests/crash): sees every change to any File of the process before it is
/// made, and may make it fail as the host would. Only a program that links the engine can install it;
/// nothing reads it from the environment. Unset, it costs one pointer load per operation.
class FaultInjection {
  public:
    enum class Op { Write, Sync, Truncate, Allocate, PunchHole };
    virtual ~FaultInjection() = default;
    /// @brief Called before `op` on [offset, offset+length) of `path`; a nonzero errno value makes the
    /// operation fail with that error, 0 lets it happen.
    virtual int before(Op op, const std::string& path, std::uint64_t offset, std::uint64_t length) = 0;
    /// @brief Installs the process-wide hook (nullptr removes it); the caller keeps it alive.
    static void install(FaultInjection* hook);
};

/// How many bytes a File with write_behind writes before it starts writing them back (OpenOptions).
inline constexpr std::uint64_t write_behind_window = 32ull << 20;

class File {
  public:
    enum class Mode { ReadOnly, ReadWrite, CreateExclusive, CreateTruncate };

    File(const std::string& path, Mode mode);
    /// @brief Uses a duplicate of the open descriptor `fd` (ReadOnly or ReadWrite; ReadWrite needs an
    /// O_RDWR descriptor); `path` only names the file in messages.
    File(int fd, const std::string& path, Mode mode);
    /// @brief An image's file: a duplicate of `fd` when it is >= 0, else `path` opened.
    static File image(const std::string& path, int fd, bool writable);
    ~File();
    File(const File&) = delete;
    File& operator=(const File&) = delete;

    const std::string& path() const { return path_; }
    bool writable() const { return writable_; }
    /// @brief The open descriptor (to lock the file with; its I/O goes through this class).
    int descriptor() const { return fd_; }

    /// @brief Reads exactly out.size() bytes; throws Corrupt naming `what` if the file ends first.
    void read_exact(std::uint64_t offset, std::span<std::byte> out, const char* what) const;
    /// @brief Reads what the file has and fills the rest (past its end) with zeroes.
    void read_or_zero(std::uint64_t offset, std::span<std::byte> out) const;
    void write(std::uint64_t offset, std::span<const std::byte> data);
    /// @brief Makes the range read as zero and, where possible, frees its space.
    void punch_hole(std::uint64_t offset, std::uint64_t length);
    void allocate(std::uint64_t offset, std::uint64_t length);
    /// @brief Writes real zeroes (preallocation=full: the blocks must hold data, not unwritten extents).
    void write_zeroes(std::uint64_t offset, std::uint64_t length);
    /// @brief Makes the range read as zero and keeps (or allocates) its space: written zeroes without
    /// the writing where the file system can (FALLOC_FL_ZERO_RANGE).
    void zero_range(std::uint64_t offset, std::uint64_t length);
    /// @brief Copies up to `length` bytes of the file `source` from `source_offset` to `offset` here, in
    /// the kernel where it can (copy_file_range); returns the count, less only where `source` ends.
    std::uint64_t copy_from(int source, std::uint64_t source_offset, std::uint64_t offset,
                            std::uint64_t length);
    void truncate(std::uint64_t size);
    void sync();
    /// @brief sync() unless it already synced and wrote, truncated or allocated nothing since: a flush
    /// with nothing new (a destructor's after an explicit one) then cannot fail.
    void sync_pending();
    /// @brief Streaming writes (convert, upload): every `window` bytes written, start writing them back
    /// to the disk, so that the disk works while the caller does and the final sync() finds little
    /// left. Changes no guarantee: durability still comes from sync(). 0 turns it off.
    void write_behind(std::uint64_t window) { write_behind_window_ = window; }
    std::uint64_t size() const;
    /// @brief Bytes the file occupies on its file system (st_blocks * 512), as `actual-size` reports.
    std::uint64_t allocated_bytes() const;
    /// @brief True when [offset, offset+length) holds no data according to SEEK_DATA.
    bool is_hole(std::uint64_t offset, std::uint64_t length) const;
    /// @brief The first offset >= offset with data (SEEK_DATA), or size() if none.
    std::uint64_t next_data(std::uint64_t offset) const;
    /// @brief The first offset >= offset in a hole (SEEK_HOLE).
    std::uint64_t next_hole(std::uint64_t offset) const;

  private:
    void write_data(std::uint64_t offset, std::span<const std::byte> data);
    void start_writeback(std::uint64_t offset, std::uint64_t length);

    std::string path_;
    int fd_ = -1;
    bool writable_ = false;
    bool block_device_ = false;
    bool unsynced_ = false; // written, truncated or allocated since the last sync that succeeded
    std::uint64_t write_behind_window_ = 0;
    std::uint64_t pending_ = 0;                // bytes written since writeback was last started
    std::uint64_t pending_begin_ = UINT64_MAX; // the range they lie in
    std::uint64_t pending_end_ = 0;
};

} // namespace vmstor::qcow2
