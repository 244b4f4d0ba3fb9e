#include "error_boundary.hpp"

namespace vmstor::daemon {

sdbus::Error to_dbus_error(const vmstor::Error& error) {
    return sdbus::Error(std::string(error_prefix) + std::string(error_code_name(error.code())), error.what());
}

sdbus::Error to_dbus_error(std::exception_ptr error) {
    try {
        std::rethrow_exception(error);
    } catch (const sdbus::Error& e) {
        return e;
    } catch (const vmstor::Error& e) {
        return to_dbus_error(e);
    } catch (const std::exception& e) {
        spdlog::error("unexpected failure in a D-Bus handler: {}", e.what());
        return to_dbus_error(vmstor::Error(ErrorCode::Failed, std::string("internal error: ") + e.what()));
    } catch (...) {
        spdlog::error("unexpected non-standard exception in a D-Bus handler");
        return to_dbus_error(vmstor::Error(ErrorCode::Failed, "internal error"));
    }
}

} // namespace vmstor::daemon
