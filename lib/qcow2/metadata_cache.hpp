// A bounded write-back cache of fixed-size metadata slices (L2 slices, refcount blocks), LRU evicted.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <unordered_map>
#include <vector>

namespace vmstor::qcow2 {

class MetadataCache {
  public:
    using Loader = std::function<void(std::uint64_t offset, std::vector<std::byte>& slice)>;
    using Writer = std::function<void(std::uint64_t offset, const std::vector<std::byte>& slice)>;

    MetadataCache(std::size_t slice_size, std::size_t capacity, Loader load, Writer write);

    std::size_t slice_size() const { return slice_size_; }

    /// @brief The slice at host offset `offset`, loaded if needed. The pointer stays valid until the
    /// next get() or fresh() call.
    std::byte* get(std::uint64_t offset);
    /// @brief A zero-filled slice at `offset` without reading the file (a new table), marked dirty.
    std::byte* fresh(std::uint64_t offset);
    void mark_dirty(std::uint64_t offset);
    /// @brief Writes every dirty slice (in offset order).
    void write_back();
    bool has_dirty() const { return dirty_count_ > 0; }
    /// @brief Drops every slice whose offset is in [offset, offset+length), written back first if dirty.
    void forget(std::uint64_t offset, std::uint64_t length);
    void clear();

  private:
    struct Entry {
        std::vector<std::byte> data;
        bool dirty = false;
        std::list<std::uint64_t>::iterator lru;
    };
    Entry& insert(std::uint64_t offset);
    void evict_one();

    std::size_t slice_size_;
    std::size_t capacity_;
    Loader load_;
    Writer write_;
    std::unordered_map<std::uint64_t, Entry> entries_;
    std::list<std::uint64_t> lru_; // front = most recently used
    std::size_t dirty_count_ = 0;
};

} // namespace vmstor::qcow2
