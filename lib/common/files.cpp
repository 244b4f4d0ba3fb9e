#include "files.hpp"

#include "error.hpp"

#include <cerrno>
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

namespace vmstor {

void replace_file(const std::string& path, const std::string& text, mode_t mode, const std::string& what) {
    std::string temporary = path + ".new";
    int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        throw system_error(errno, fmt::format("cannot write {} '{}'", what, temporary));
    bool written =
        ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
    int saved_errno = errno;
    ::close(fd);
    if (!written || ::rename(temporary.c_str(), path.c_str()) < 0) {
        int errnum = written ? errno : saved_errno;
        ::unlink(temporary.c_str());
        throw system_error(errnum, fmt::format("cannot write {} '{}'", what, path));
    }
}

} // namespace vmstor
