// An existing volume's image is opened once, beneath its pool directory, and the engine works on that
// descriptor: a file renamed or symlinked over the volume's name after the check is never used.
#include "error_helpers.hpp"
#include "qcow2/image.hpp"
#include "qcow2/operations.hpp"
#include "storage/image_jobs.hpp"
#include "storage/volume_file.hpp"

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <span>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace fs = std::filesystem;
using vmstor::ErrorCode;
using vmstor::test::code_of;

namespace {

constexpr std::uint64_t MiB = 1 << 20;

/// @brief A fresh directory standing for a pool, and one outside it; removed at the end.
struct Dirs {
    fs::path root;
    fs::path pool;
    fs::path outside;
    Dirs() {
        std::string pattern = (fs::temp_directory_path() / "vmstor-volume-file-XXXXXX").string();
        root = ::mkdtemp(pattern.data());
        pool = root / "pool";
        outside = root / "outside";
        fs::create_directory(pool);
        fs::create_directory(outside);
    }
    ~Dirs() { fs::remove_all(root); }
};

/// @brief A qcow2 image of `size` bytes whose first MiB reads as `fill`; `backing` is recorded as given.
void make_qcow2(const fs::path& path, std::uint64_t size, std::byte fill, const std::string& backing = "") {
    vmstor::qcow2::CreateOptions create;
    create.size = size;
    if (!backing.empty()) {
        create.backing_file = backing;
        create.backing_format = "qcow2";
    }
    vmstor::qcow2::create_image(path.string(), create);
    if (fill == std::byte{0})
        return;
    vmstor::qcow2::OpenOptions options;
    options.format = vmstor::qcow2::ImageFormat::Qcow2;
    options.writable = true;
    auto image = vmstor::qcow2::Image::open(path.string(), options);
    std::vector<std::byte> data(MiB, fill);
    image->write(0, data);
    image->flush();
}

std::byte first_byte(vmstor::qcow2::Image& image) {
    std::byte out[512];
    image.read(0, out);
    return out[0];
}

} // namespace

TEST_CASE("the engine reads the checked file even after another file is renamed over its name") {
    Dirs dirs;
    fs::path volume = dirs.pool / "disk.qcow2";
    make_qcow2(volume, 16 * MiB, std::byte{0xAA});
    make_qcow2(dirs.pool / "swap.qcow2", 32 * MiB, std::byte{0x55});

    vmstor::storage::VolumeFile checked(volume.string(), O_RDONLY);
    struct stat original {};
    REQUIRE(::fstat(checked.fd(), &original) == 0);
    fs::rename(dirs.pool / "swap.qcow2", volume); // the name now leads to another file

    vmstor::qcow2::OpenOptions options;
    options.format = vmstor::qcow2::ImageFormat::Qcow2;
    options.fd = checked.fd();
    auto image = vmstor::qcow2::Image::open(volume.string(), options);
    CHECK(image->virtual_size() == 16 * MiB);
    CHECK(first_byte(*image) == std::byte{0xAA});
    CHECK(image->info().filename == volume.string()); // messages name the volume, not /proc/self/fd/N

    // Opened by name, the same call would have used the other file.
    options.fd = -1;
    CHECK(vmstor::qcow2::Image::open(volume.string(), options)->virtual_size() == 32 * MiB);
    struct stat now {};
    REQUIRE(::stat(volume.c_str(), &now) == 0);
    CHECK(now.st_ino != original.st_ino);
}

TEST_CASE("the engine reads the checked file even after a symlink to a file outside replaces its name") {
    Dirs dirs;
    fs::path volume = dirs.pool / "disk.qcow2";
    make_qcow2(volume, 16 * MiB, std::byte{0xAA});
    make_qcow2(dirs.outside / "secret.qcow2", 32 * MiB, std::byte{0x55});

    vmstor::storage::VolumeFile checked(volume.string(), O_RDWR);
    fs::remove(volume);
    fs::create_symlink(dirs.outside / "secret.qcow2", volume);

    vmstor::qcow2::OpenOptions options;
    options.format = vmstor::qcow2::ImageFormat::Qcow2;
    options.writable = true;
    options.fd = checked.fd();
    auto image = vmstor::qcow2::Image::open(volume.string(), options);
    CHECK(first_byte(*image) == std::byte{0xAA});
    std::vector<std::byte> data(MiB, std::byte{0x11});
    image->write(0, data);
    image->flush();
    image.reset();

    // The write went to the checked file; the file outside is as it was.
    options.fd = -1;
    options.writable = false;
    CHECK(first_byte(*vmstor::qcow2::Image::open((dirs.outside / "secret.qcow2").string(), options)) ==
          std::byte{0x55});
    options.fd = checked.fd();
    CHECK(first_byte(*vmstor::qcow2::Image::open(volume.string(), options)) == std::byte{0x11});
}

TEST_CASE("a symlinked volume is refused before the engine sees it") {
    Dirs dirs;
    make_qcow2(dirs.outside / "secret.qcow2", 16 * MiB, std::byte{0x55});
    fs::create_symlink(dirs.outside / "secret.qcow2", dirs.pool / "disk.qcow2");
    vmstor::storage::VolumeImage volume{(dirs.pool / "disk.qcow2").string(), "qcow2", true};
    CHECK(code_of([&] { vmstor::storage::open_volume_image(volume, {}); }) == ErrorCode::NotAuthorized);
    CHECK(code_of([&] { vmstor::storage::check_image_file(volume, vmstor::storage::RepairLevel::None); }) ==
          ErrorCode::NotAuthorized);
    CHECK(code_of([&] { vmstor::storage::image_info_json(volume, false); }) == ErrorCode::NotAuthorized);
}

TEST_CASE("relative backing names resolve against the volume's directory when opened by descriptor") {
    Dirs dirs;
    make_qcow2(dirs.pool / "base.qcow2", 16 * MiB, std::byte{0xAA});
    make_qcow2(dirs.pool / "overlay.qcow2", 16 * MiB, std::byte{0}, "base.qcow2");
    vmstor::storage::VolumeImage volume{(dirs.pool / "overlay.qcow2").string(), "qcow2", true};
    auto image = vmstor::storage::open_volume_image(volume, {});
    REQUIRE(image->backing() != nullptr);
    CHECK(image->backing()->path() == (dirs.pool / "base.qcow2").string());
    CHECK(first_byte(*image) == std::byte{0xAA});
    std::string json = vmstor::storage::image_info_json(volume, true);
    CHECK(json.find((dirs.pool / "overlay.qcow2").string()) != std::string::npos);
    CHECK(json.find("/proc/self/fd") == std::string::npos);
}

TEST_CASE("a read-only descriptor cannot be opened for writing") {
    Dirs dirs;
    fs::path volume = dirs.pool / "disk.qcow2";
    make_qcow2(volume, 16 * MiB, std::byte{0});
    vmstor::storage::VolumeFile checked(volume.string(), O_RDONLY);
    vmstor::qcow2::OpenOptions options;
    options.writable = true;
    options.fd = checked.fd();
    CHECK(code_of([&] { vmstor::qcow2::Image::open(volume.string(), options); }) ==
          ErrorCode::InvalidArgument);
}
