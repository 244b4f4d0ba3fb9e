#include "errors.hpp"

#include <cerrno>
#include <fmt/format.h>
#include <libvirt/virterror.h>
#include <spdlog/spdlog.h>

namespace vmstor::virt {

namespace {

void log_libvirt_error(void*, virErrorPtr error) {
    if (error && error->message)
        spdlog::debug("libvirt: {} (code {}, domain {})", error->message, error->code, error->domain);
}

ErrorCode code_for(const virError& error) {
    switch (error.code) {
    case VIR_ERR_NO_STORAGE_POOL:
    case VIR_ERR_NO_STORAGE_VOL:
    case VIR_ERR_NO_DOMAIN:
    case VIR_ERR_NO_SECRET:
        return ErrorCode::NotFound;
    case VIR_ERR_INVALID_ARG:
    case VIR_ERR_XML_ERROR:
    case VIR_ERR_XML_DETAIL:
    case VIR_ERR_INVALID_STORAGE_POOL:
    case VIR_ERR_INVALID_STORAGE_VOL:
        return ErrorCode::InvalidArgument;
    case VIR_ERR_NO_SUPPORT:
    case VIR_ERR_CONFIG_UNSUPPORTED:
    case VIR_ERR_ARGUMENT_UNSUPPORTED:
        return ErrorCode::NotSupported;
    case VIR_ERR_AUTH_FAILED:
    case VIR_ERR_ACCESS_DENIED:
    case VIR_ERR_OPERATION_DENIED:
        return ErrorCode::NotAuthorized;
    case VIR_ERR_STORAGE_VOL_EXIST:
        return ErrorCode::AlreadyExists;
    case VIR_ERR_SYSTEM_ERROR:
        return error.int1 == ENOSPC ? ErrorCode::NoSpace : ErrorCode::LibvirtError;
    default:
        return ErrorCode::LibvirtError;
    }
}

} // namespace

void route_errors_to_log() {
    virSetErrorFunc(nullptr, log_libvirt_error);
}

vmstor::Error last_error(const std::string& what) {
    virErrorPtr error = virGetLastError();
    if (!error)
        return vmstor::Error(ErrorCode::LibvirtError, fmt::format("{}: libvirt gave no reason", what));
    std::string message = fmt::format("{}: {} (libvirt error {})", what,
                                      error->message ? error->message : "no message", error->code);
    return vmstor::Error(code_for(*error), message);
}

} // namespace vmstor::virt
