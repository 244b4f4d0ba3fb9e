// What a call threw, for tests that pin the error code or message of a refusal.
#pragma once

#include "common/error.hpp"

#include <catch2/catch.hpp>
#include <string>

namespace vmstor::test {

/// @brief The code of the vmstor::Error `fn` throws; fails the test if it throws none.
inline ErrorCode code_of(auto&& fn) {
    try {
        fn();
    } catch (const Error& e) {
        return e.code();
    }
    FAIL("no error was thrown");
    return ErrorCode::Failed;
}

/// @brief The message of the vmstor::Error `fn` throws; fails the test if it throws none.
inline std::string message_of(auto&& fn) {
    try {
        fn();
    } catch (const Error& e) {
        return e.what();
    }
    FAIL("no error was thrown");
    return {};
}

} // namespace vmstor::test
