// A volume's whole backing chain, read from the images themselves (libvirt's volume XML names only the
// nearest backing file).
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace vmstor::storage {

/// @brief (path, format) of every backing file below an image whose nearest backing file is
/// (`path`, `format`), nearest first. Follows only recorded formats (never probes), stops at a loop or
/// after a bounded depth, and stops quietly at an image it cannot read.
std::vector<std::pair<std::string, std::string>> read_backing_chain(const std::string& path,
                                                                    const std::string& format);

} // namespace vmstor::storage
