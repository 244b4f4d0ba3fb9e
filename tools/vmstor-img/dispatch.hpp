// vmstor-img's command dispatcher, in a library of its own so that test drivers run the commands
// in-process (tests/crash/fault_img.cpp) exactly as the tool does.
#pragma once

namespace vmstor::img {

/// @brief Runs the vmstor-img command in argv[1] with its arguments; prints errors as the tool does and
/// returns its exit status.
int run_command(int argc, char** argv);

} // namespace vmstor::img
