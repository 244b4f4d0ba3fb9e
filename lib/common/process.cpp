#include "process.hpp"

#include "error.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <tuple>
#include <unistd.h>

extern char** environ;

namespace vmstor {

namespace {

struct Pipe {
    int read = -1;
    int write = -1;
    Pipe() {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0)
            throw Error(ErrorCode::Failed, fmt::format("cannot make a pipe: {}", std::strerror(errno)));
        read = fds[0];
        write = fds[1];
    }
    ~Pipe() {
        close_read();
        close_write();
    }
    void close_read() {
        if (read >= 0)
            ::close(read);
        read = -1;
    }
    void close_write() {
        if (write >= 0)
            ::close(write);
        write = -1;
    }
};

struct SpawnActions {
    posix_spawn_file_actions_t actions;
    SpawnActions() { posix_spawn_file_actions_init(&actions); }
    ~SpawnActions() { posix_spawn_file_actions_destroy(&actions); }
};

} // namespace

ProcessResult run_process(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                          std::size_t output_limit) {
    if (argv.empty())
        throw Error(ErrorCode::Failed, "run_process: no program given");
    Pipe out, err;
    SpawnActions spawn;
    posix_spawn_file_actions_addopen(&spawn.actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&spawn.actions, out.write, 1);
    posix_spawn_file_actions_adddup2(&spawn.actions, err.write, 2);
    std::vector<char*> args;
    for (const std::string& arg : argv)
        args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    pid_t pid = -1;
    int r = ::posix_spawnp(&pid, args[0], &spawn.actions, nullptr, args.data(), environ);
    if (r != 0)
        throw Error(ErrorCode::Failed, fmt::format("cannot run {}: {}", argv[0], std::strerror(r)));
    out.close_write();
    err.close_write();

    ProcessResult result;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    bool timed_out = false;
    while (out.read >= 0 || err.read >= 0) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                          std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            timed_out = true;
            ::kill(pid, SIGKILL);
            break;
        }
        pollfd fds[2] = {{out.read, POLLIN, 0}, {err.read, POLLIN, 0}};
        if (::poll(fds, 2, static_cast<int>(left.count())) < 0 && errno != EINTR)
            break;
        for (auto [fd, pipe, text] :
             {std::tuple{fds[0], &out, &result.out}, std::tuple{fds[1], &err, &result.err}}) {
            if (pipe->read < 0 || !(fd.revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char buffer[4096];
            ssize_t got = ::read(pipe->read, buffer, sizeof buffer);
            if (got <= 0) {
                pipe->close_read();
                continue;
            }
            text->append(buffer,
                         std::min<std::size_t>(got, output_limit - std::min(output_limit, text->size())));
        }
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (timed_out)
        throw Error(ErrorCode::Failed,
                    fmt::format("{} did not finish within {} ms", argv[0], timeout.count()));
    result.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return result;
}

} // namespace vmstor
