// vmstor-img: the qcow2 engine's command line, shaped like qemu-img (subcommands, options, exit codes).
#include "dispatch.hpp"

int main(int argc, char** argv) {
    return vmstor::img::run_command(argc, argv);
}
