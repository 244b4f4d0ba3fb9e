// Raw images: guest data is the file; holes (SEEK_HOLE) read as zeroes.
#pragma once

#include "file.hpp"
#include "image.hpp"
#include "image_lock.hpp"
#include "operations.hpp"

namespace vmstor::qcow2 {

class RawImage final : public Image {
  public:
    RawImage(const std::string& path, const OpenOptions& options);

    ImageFormat format() const override { return ImageFormat::Raw; }
    const std::string& path() const override { return file_.path(); }
    std::uint64_t virtual_size() const override { return size_; }
    std::uint64_t cluster_size() const override { return 512; }
    void read(std::uint64_t offset, std::span<std::byte> out) override;
    void write(std::uint64_t offset, std::span<const std::byte> data) override;
    void write_zeroes(std::uint64_t offset, std::uint64_t length) override;
    void discard(std::uint64_t offset, std::uint64_t length) override;
    void flush() override;
    BlockStatus block_status(std::uint64_t offset, std::uint64_t length) override;
    Image* backing() override { return nullptr; }
    ImageInfo info() override;
    CheckResult check(RepairMode repair) override;
    void resize(std::uint64_t new_size, bool allow_shrink) override;
    /// @brief Reserves (falloc) or writes zeroes to (full) the host range [from, to).
    void preallocate(Preallocation mode, std::uint64_t from, std::uint64_t to);

  private:
    void check_range(std::uint64_t offset, std::uint64_t length) const;
    File file_;
    std::unique_ptr<ImageLock> lock_;
    std::uint64_t size_;
    bool sync_;
};

} // namespace vmstor::qcow2
