// Command-line helpers shared by the vmstor-img subcommands.
#pragma once

#include "qcow2/image.hpp"
#include "qcow2/image_lock.hpp"
#include "qcow2/operations.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace vmstor::img {

enum class OutputFormat { Human, Json };

/// @brief "json" or "human"; throws InvalidArgument otherwise.
OutputFormat parse_output(const std::string& text);

/// @brief qemu-img's size_to_str: "20 MiB", "272 KiB", "1.5 GiB".
std::string human_size(std::uint64_t bytes);

/// @brief Splits "k=v,k2=v2" (",," is a literal comma) into pairs; "help" is reported as InvalidArgument.
std::vector<std::pair<std::string, std::string>> parse_option_list(const std::string& text);

/// @brief Opens an image, probing its own format unless given; a backing file needs a recorded format.
/// With `snapshot`, the image reads as it was at that internal snapshot (read-only). The image (and its
/// backing chain) is locked as qemu-img locks it; a conflict, and -U (`locking.force_share`) for a
/// writable image, are refused in qemu-img's words.
std::unique_ptr<qcow2::Image> open_image(const std::string& path, const std::optional<std::string>& format,
                                         bool open_backing, bool writable = false,
                                         const std::optional<std::string>& snapshot = std::nullopt,
                                         const qcow2::LockOptions& locking = {});

/// @brief qemu-img's refusal of an option a command does not take (-U/--force-share where it writes).
[[noreturn]] void unrecognized_option(const std::string& option);

/// @brief getopt_long's value for --force-share (-U is 'U').
inline constexpr int force_share_option = 0x100;

/// @brief Locks the backing chain of `image` as qemu-img's readers of it, for commands that qemu-img
/// runs with the chain open but vmstor-img without it (check, snapshot -l); an unreadable chain is left
/// to the command. Keep the result for the command's duration.
std::unique_ptr<qcow2::Image> lock_backing_chain(qcow2::Image& image, const qcow2::LockOptions& locking);

/// @brief Holds qemu-img create's locks on `path` when it already exists (a new file has no other
/// user); `prefix` starts the refusal (qemu-img's "FILE: " or "FILE: error while converting FMT: ").
class ExistingFileLock {
  public:
    ExistingFileLock(const std::string& path, const std::string& prefix);
    ~ExistingFileLock();
    ExistingFileLock(const ExistingFileLock&) = delete;
    ExistingFileLock& operator=(const ExistingFileLock&) = delete;

  private:
    int fd_ = -1;
    std::unique_ptr<qcow2::ImageLock> lock_;
};

/// @brief A size argument as qemu-img takes it (suffixes k, M, G, T, P, E; bytes without one).
std::uint64_t parse_size_argument(const std::string& text);

/// @brief Prints "vmstor-img: message" on stderr.
void print_error(const std::string& message);

int cmd_info(int argc, char** argv);
int cmd_map(int argc, char** argv);
int cmd_measure(int argc, char** argv);
int cmd_check(int argc, char** argv);
int cmd_create(int argc, char** argv);
int cmd_convert(int argc, char** argv);
int cmd_resize(int argc, char** argv);
int cmd_compare(int argc, char** argv);
int cmd_snapshot(int argc, char** argv);

/// @brief The snapshot table as qemu-img prints it (info and snapshot -l).
void print_snapshot_table(const std::vector<qcow2::SnapshotInfo>& snapshots);
int cmd_commit(int argc, char** argv);
int cmd_rebase(int argc, char** argv);

} // namespace vmstor::img
