// Scratch directories and qemu-img/qemu-io helpers for the engine's unit tests.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qcow2_test {

/// @brief A temporary directory removed (with its content) at the end of the test.
class Scratch {
  public:
    Scratch();
    ~Scratch();
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
    std::string path(const std::string& name) const { return dir_ + "/" + name; }

  private:
    std::string dir_;
};

struct Run {
    int status = -1;
    std::string output; // stdout and stderr together
};

/// @brief Runs a shell command; QEMU_IMG and QEMU_IO in the environment name the tools (else PATH).
Run run(const std::string& command);
std::string qemu_img();
std::string qemu_io();
std::string vmstor_img();

/// @brief Overwrites bytes of a file at an offset (to damage images on purpose).
void patch_file(const std::string& path, std::uint64_t offset, const std::vector<std::uint8_t>& bytes);
void patch_be64(const std::string& path, std::uint64_t offset, std::uint64_t value);
void patch_be32(const std::string& path, std::uint64_t offset, std::uint32_t value);
std::uint64_t read_be64(const std::string& path, std::uint64_t offset);

} // namespace qcow2_test
