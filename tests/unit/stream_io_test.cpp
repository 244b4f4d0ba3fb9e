// A caller's stream that nobody reads or writes stalls only its own job: a cancel ends the wait.
#include "error_helpers.hpp"
#include "storage/stream_io.hpp"

#include <catch2/catch.hpp>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <thread>
#include <unistd.h>
#include <vector>

using vmstor::ErrorCode;
using vmstor::test::code_of;

namespace {

struct Pipe {
    int read_end = -1;
    int write_end = -1;
    Pipe() {
        int fds[2];
        REQUIRE(pipe2(fds, O_CLOEXEC) == 0);
        read_end = fds[0];
        write_end = fds[1];
    }
    ~Pipe() {
        close(read_end);
        close(write_end);
    }
    int queued() const {
        int bytes = 0;
        REQUIRE(ioctl(read_end, FIONREAD, &bytes) == 0);
        return bytes;
    }
};

} // namespace

TEST_CASE("a write into a pipe nobody reads stops when the job is cancelled") {
    Pipe pipe;
    const int capacity = fcntl(pipe.write_end, F_GETPIPE_SZ);
    vmstor::storage::JobContext context;
    vmstor::storage::CallerStream stream(pipe.write_end, context, "download stream of a test");
    std::vector<std::byte> data(static_cast<std::size_t>(capacity) * 4);
    ErrorCode code = ErrorCode::Failed;
    std::thread writer([&] { code = code_of([&] { stream.write_fully(data); }); });
    while (pipe.queued() < capacity)
        std::this_thread::yield(); // the writer has filled the pipe and waits for a reader
    context.cancel();
    writer.join(); // a write that blocked on the pipe would never return
    CHECK(code == ErrorCode::Cancelled);
}

TEST_CASE("a read from a pipe nobody writes stops when the job is cancelled") {
    Pipe pipe;
    vmstor::storage::JobContext context;
    vmstor::storage::CallerStream stream(pipe.read_end, context, "upload stream into a test");
    std::vector<std::byte> data(4096);
    ErrorCode code = ErrorCode::Failed;
    std::thread reader([&] { code = code_of([&] { stream.read_fully(data); }); });
    context.cancel();
    reader.join();
    CHECK(code == ErrorCode::Cancelled);
}

TEST_CASE("a stream read and written through pipes carries every byte") {
    Pipe pipe;
    vmstor::storage::JobContext context;
    vmstor::storage::CallerStream out(pipe.write_end, context, "download stream of a test");
    vmstor::storage::CallerStream in(pipe.read_end, context, "upload stream into a test");
    std::vector<std::byte> sent(1 << 20);
    for (std::size_t i = 0; i < sent.size(); ++i)
        sent[i] = static_cast<std::byte>(i * 7);
    std::vector<std::byte> got(sent.size());
    std::size_t count = 0;
    std::thread reader([&] { count = in.read_fully(got); });
    out.write_fully(sent);
    close(pipe.write_end);
    pipe.write_end = -1;
    reader.join();
    CHECK(count == sent.size());
    CHECK(got == sent);
}
