#include "bus.hpp"

namespace vmstor::client {

std::unique_ptr<sdbus::IConnection> connect_to_bus(bool session) {
    return session ? sdbus::createSessionBusConnection() : sdbus::createSystemBusConnection();
}

} // namespace vmstor::client
