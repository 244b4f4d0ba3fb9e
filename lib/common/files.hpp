// Small files that must survive a crash whole: vmstord's settings and job records.
#pragma once

#include <string>
#include <sys/types.h>

namespace vmstor {

/// @brief Replaces `path` with `text` atomically: writes `path`.new with `mode`, fsyncs it, renames it
/// over `path`. A crash leaves the old file or the new one. Throws vmstor::Error naming `what`.
void replace_file(const std::string& path, const std::string& text, mode_t mode, const std::string& what);

} // namespace vmstor
