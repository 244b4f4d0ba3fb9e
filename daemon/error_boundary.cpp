#include "error_boundary.hpp"

namespace vmstor::daemon {

sdbus::Error to_dbus_error(const vmstor::Error& error) {
    return sdbus::Error(std::string(error_prefix) + std::string(error_code_name(error.code())), error.what());
}

} // namespace vmstor::daemon
