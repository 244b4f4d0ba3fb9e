// libFuzzer target over the engine's untrusted-image paths: open, info (and its qemu-img JSON), check,
// block status and reads, first without the backing chain, then with it when the image names one of the
// target's own files. A refusal must be a vmstor::Error with code Corrupt or NotSupported whose message
// names the image; any other outcome aborts, so that libFuzzer records the input.
#include "common/error.hpp"
#include "imagejson/info_json.hpp"
#include "imagejson/qemu_json.hpp"
#include "qcow2/chain_status.hpp"
#include "qcow2/image.hpp"
#include "qcow2/operations.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <string>
#include <typeinfo>
#include <unistd.h>
#include <vector>

namespace q = vmstor::qcow2;

namespace {

// Every file the target opens lives in its own scratch directory. A fuzzed image may name only these
// as its backing file (with the same name, a chain that loops back to itself).
constexpr const char* image_name = "image.qcow2";
constexpr const char* base_raw_name = "base.raw";
constexpr const char* base_qcow2_name = "base.qcow2";
constexpr std::array backing_names = {image_name, base_raw_name, base_qcow2_name};

constexpr std::uint64_t base_size = 1 << 20;
constexpr std::size_t max_read = 64 * 1024;     // bytes read from each extent
constexpr int max_extents = 256;                // extents walked per image (virtual sizes reach 2^61)
constexpr std::size_t max_message_bytes = 4096; // a backing name may be quoted in a message

std::string scratch_dir;

[[noreturn]] void fail(const std::string& what) {
    std::fprintf(stderr, "qcow2-fuzzer: %s\n", what.c_str());
    std::fflush(stderr);
    std::abort();
}

std::string scratch_path(const char* name) {
    return scratch_dir + "/" + name;
}

// Rewrites a file in place: truncating to zero first would make ext4 flush it on close (auto_da_alloc).
void write_file(const std::string& path, const std::uint8_t* data, std::size_t size) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        fail("cannot create " + path);
    for (std::size_t done = 0; done < size;) {
        const ssize_t n = ::pwrite(fd, data + done, size - done, static_cast<off_t>(done));
        if (n <= 0)
            fail("cannot write " + path);
        done += static_cast<std::size_t>(n);
    }
    if (::ftruncate(fd, static_cast<off_t>(size)) != 0)
        fail("cannot truncate " + path);
    ::close(fd);
}

void remove_scratch_dir() {
    for (const char* name : backing_names)
        ::unlink(scratch_path(name).c_str());
    ::rmdir(scratch_dir.c_str());
}

// The backing files an image may name: a raw file with a pattern, and a qcow2 image over it that
// holds a cluster of its own (so that a chain of three layers is read).
void make_backing_files() {
    std::vector<std::uint8_t> pattern(base_size);
    for (std::size_t i = 0; i < pattern.size(); ++i)
        pattern[i] = static_cast<std::uint8_t>(i / 512 + 1);
    write_file(scratch_path(base_raw_name), pattern.data(), pattern.size());
    q::CreateOptions create;
    create.size = base_size;
    create.cluster_size = 4096;
    create.backing_file = base_raw_name;
    create.backing_format = "raw";
    q::create_image(scratch_path(base_qcow2_name), create);
    q::OpenOptions open;
    open.writable = true;
    auto base = q::Image::open(scratch_path(base_qcow2_name), open);
    const std::vector<std::byte> data(4096, std::byte{0xb5});
    base->write(65536, data);
    base->flush();
}

// Walks the guest address space by block status and reads both ends of every extent.
void walk(q::Image& image, bool chain) {
    const std::uint64_t size = image.virtual_size();
    std::vector<std::byte> buffer(max_read);
    std::uint64_t offset = 0;
    for (int extent = 0; extent < max_extents && offset < size; ++extent) {
        const std::uint64_t length = chain ? q::chain_block_status(image, offset, size - offset).length
                                           : image.block_status(offset, size - offset).length;
        if (length == 0 || length > size - offset)
            fail("block status at " + std::to_string(offset) + " returned " + std::to_string(length) +
                 " bytes of " + std::to_string(size - offset));
        const std::size_t chunk = static_cast<std::size_t>(std::min<std::uint64_t>(length, max_read));
        image.read(offset, std::span(buffer).first(chunk));
        if (length > chunk)
            image.read(offset + length - chunk, std::span(buffer).first(chunk));
        offset += length;
    }
}

void inspect(q::Image& image, bool chain) {
    const q::ImageInfo info = image.info();
    const std::string json = vmstor::img::qemu_json(vmstor::img::info_json(info));
    if (json.empty())
        fail("info printed no JSON");
    if (!chain)
        image.check(q::RepairMode::None);
    walk(image, chain);
}

// Runs one stage; a vmstor::Error must be a clear refusal, anything else escaping is a finding.
template <typename Stage> void run_stage(const char* stage, Stage run) {
    try {
        run();
    } catch (const vmstor::Error& e) {
        const std::string message = e.what();
        if (e.code() != vmstor::ErrorCode::Corrupt && e.code() != vmstor::ErrorCode::NotSupported)
            fail(std::string(stage) + ": refused with " + std::string(vmstor::error_code_name(e.code())) +
                 " instead of Corrupt or NotSupported: " + message);
        if (message.find(scratch_dir) == std::string::npos || message.find('\n') != std::string::npos ||
            message.size() > max_message_bytes)
            fail(std::string(stage) + ": the message must be one line that names the image: " + message);
    } catch (const std::exception& e) {
        fail(std::string(stage) + ": " + typeid(e).name() + " escaped: " + e.what());
    }
}

bool names_own_file(const std::optional<std::string>& backing) {
    return backing && std::find(backing_names.begin(), backing_names.end(), *backing) != backing_names.end();
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/vmstor-fuzz-XXXXXX";
    if (!::mkdtemp(pattern.data()))
        fail("cannot create a scratch directory from " + pattern);
    scratch_dir = pattern;
    std::atexit(remove_scratch_dir);
    make_backing_files();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string path = scratch_path(image_name);
    write_file(path, data, size);
    q::OpenOptions alone;
    alone.format = q::ImageFormat::Qcow2;
    alone.open_backing = false;
    std::optional<std::string> backing;
    run_stage("open, info, check and read without the backing chain", [&] {
        auto image = q::Image::open(path, alone);
        backing = image->info().backing_filename;
        inspect(*image, false);
    });
    q::OpenOptions for_check = alone;
    for_check.for_check = true; // the snapshot table is read tolerantly, as qemu-img check does
    run_stage("open for check and check", [&] {
        auto image = q::Image::open(path, for_check);
        image->check(q::RepairMode::None);
    });
    if (!names_own_file(backing))
        return 0;
    q::OpenOptions chained = alone;
    chained.open_backing = true;
    chained.require_backing_format = true;
    run_stage("open, info and read through the backing chain", [&] {
        auto image = q::Image::open(path, chained);
        inspect(*image, true);
    });
    return 0;
}
