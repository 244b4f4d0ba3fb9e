#include "helpers.hpp"

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <sys/wait.h>

namespace qcow2_test {

Scratch::Scratch() {
    char tmpl[] = "/tmp/qcow2-unit.XXXXXX";
    if (!mkdtemp(tmpl))
        throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
}

Scratch::~Scratch() {
    std::system(("rm -rf '" + dir_ + "'").c_str());
}

Run run(const std::string& command) {
    Run r;
    FILE* pipe = popen((command + " 2>&1").c_str(), "r");
    if (!pipe)
        return r;
    std::array<char, 4096> buf{};
    while (std::size_t n = std::fread(buf.data(), 1, buf.size(), pipe))
        r.output.append(buf.data(), n);
    int status = pclose(pipe);
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

static std::string tool(const char* variable, const char* fallback) {
    const char* value = std::getenv(variable);
    return value && *value ? value : fallback;
}

std::string qemu_img() {
    return tool("QEMU_IMG", "qemu-img");
}
std::string qemu_io() {
    return tool("QEMU_IO", "qemu-io");
}
std::string vmstor_img() {
    return tool("VMSTOR_IMG", "vmstor-img");
}

void patch_file(const std::string& path, std::uint64_t offset, const std::vector<std::uint8_t>& bytes) {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(offset));
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

void patch_be64(const std::string& path, std::uint64_t offset, std::uint64_t value) {
    std::vector<std::uint8_t> b(8);
    for (int i = 0; i < 8; ++i)
        b[i] = static_cast<std::uint8_t>(value >> (56 - 8 * i));
    patch_file(path, offset, b);
}

void patch_be32(const std::string& path, std::uint64_t offset, std::uint32_t value) {
    std::vector<std::uint8_t> b(4);
    for (int i = 0; i < 4; ++i)
        b[i] = static_cast<std::uint8_t>(value >> (24 - 8 * i));
    patch_file(path, offset, b);
}

std::uint64_t read_be64(const std::string& path, std::uint64_t offset) {
    std::ifstream f(path, std::ios::binary);
    f.seekg(static_cast<std::streamoff>(offset));
    std::uint8_t b[8] = {};
    f.read(reinterpret_cast<char*>(b), 8);
    std::uint64_t v = 0;
    for (auto x : b)
        v = v << 8 | x;
    return v;
}

} // namespace qcow2_test
