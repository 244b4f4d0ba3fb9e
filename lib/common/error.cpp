#include "error.hpp"

#include <cerrno>
#include <cstring>

namespace vmstor {

std::string_view error_code_name(ErrorCode code) {
    switch (code) {
    case ErrorCode::NotFound:
        return "NotFound";
    case ErrorCode::AlreadyExists:
        return "AlreadyExists";
    case ErrorCode::InvalidArgument:
        return "InvalidArgument";
    case ErrorCode::NotSupported:
        return "NotSupported";
    case ErrorCode::NotAuthorized:
        return "NotAuthorized";
    case ErrorCode::Busy:
        return "Busy";
    case ErrorCode::NoSpace:
        return "NoSpace";
    case ErrorCode::Corrupt:
        return "Corrupt";
    case ErrorCode::Cancelled:
        return "Cancelled";
    case ErrorCode::LimitExceeded:
        return "LimitExceeded";
    case ErrorCode::LibvirtError:
        return "LibvirtError";
    case ErrorCode::Failed:
        return "Failed";
    }
    return "Failed";
}

Error system_error(int errnum, const std::string& what) {
    ErrorCode code = ErrorCode::Failed;
    switch (errnum) {
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
        code = ErrorCode::NoSpace;
        break;
    case ENOENT:
        code = ErrorCode::NotFound;
        break;
    case EEXIST:
        code = ErrorCode::AlreadyExists;
        break;
    case EBUSY:
    case EAGAIN:
        code = ErrorCode::Busy;
        break;
    case EACCES:
    case EPERM:
        code = ErrorCode::NotAuthorized;
        break;
    default:
        break;
    }
    return Error(code, what + ": " + std::strerror(errnum));
}

} // namespace vmstor
