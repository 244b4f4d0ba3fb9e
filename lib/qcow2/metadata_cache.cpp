#include "metadata_cache.hpp"

#include <algorithm>

namespace vmstor::qcow2 {

MetadataCache::MetadataCache(std::size_t slice_size, std::size_t capacity, Loader load, Writer write)
    : slice_size_(slice_size), capacity_(std::max<std::size_t>(capacity, 2)), load_(std::move(load)),
      write_(std::move(write)) {}

MetadataCache::Entry& MetadataCache::insert(std::uint64_t offset) {
    while (entries_.size() >= capacity_)
        evict_one();
    lru_.push_front(offset);
    Entry& e = entries_[offset];
    e.lru = lru_.begin();
    e.data.assign(slice_size_, std::byte{0});
    return e;
}

void MetadataCache::evict_one() {
    std::uint64_t victim = lru_.back();
    auto it = entries_.find(victim);
    if (it->second.dirty) {
        write_(victim, it->second.data);
        it->second.dirty = false;
        --dirty_count_;
    }
    lru_.pop_back();
    entries_.erase(it);
}

std::byte* MetadataCache::get(std::uint64_t offset) {
    auto it = entries_.find(offset);
    if (it != entries_.end()) {
        lru_.splice(lru_.begin(), lru_, it->second.lru);
        return it->second.data.data();
    }
    Entry& e = insert(offset);
    try {
        load_(offset, e.data);
    } catch (...) {
        lru_.pop_front();
        entries_.erase(offset);
        throw;
    }
    return e.data.data();
}

std::byte* MetadataCache::fresh(std::uint64_t offset) {
    forget(offset, slice_size_);
    Entry& e = insert(offset);
    e.dirty = true;
    ++dirty_count_;
    return e.data.data();
}

void MetadataCache::mark_dirty(std::uint64_t offset) {
    Entry& e = entries_.at(offset);
    if (!e.dirty) {
        e.dirty = true;
        ++dirty_count_;
    }
}

void MetadataCache::write_back() {
    if (dirty_count_ == 0)
        return;
    std::vector<std::uint64_t> dirty;
    for (auto& [offset, e] : entries_)
        if (e.dirty)
            dirty.push_back(offset);
    std::sort(dirty.begin(), dirty.end());
    for (std::uint64_t offset : dirty) {
        Entry& e = entries_.at(offset);
        write_(offset, e.data);
        e.dirty = false;
        --dirty_count_;
    }
}

void MetadataCache::forget(std::uint64_t offset, std::uint64_t length) {
    for (auto it = entries_.begin(); it != entries_.end();) {
        if (it->first >= offset && it->first < offset + length) {
            if (it->second.dirty) {
                write_(it->first, it->second.data);
                --dirty_count_;
            }
            lru_.erase(it->second.lru);
            it = entries_.erase(it);
        } else {
            ++it;
        }
    }
}

void MetadataCache::clear() {
    entries_.clear();
    lru_.clear();
    dirty_count_ = 0;
}

} // namespace vmstor::qcow2
