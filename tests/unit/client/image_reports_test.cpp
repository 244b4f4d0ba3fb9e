#include <catch2/catch.hpp>

#include "image_reports.hpp"

using namespace vmstor::client;

namespace {

nlohmann::json clean_result() {
    return nlohmann::json::parse(R"({"check-errors": 0, "corruptions": 0, "leaks": 0, "corruptions-fixed": 0,
        "leaks-fixed": 0, "image-end-offset": 262144, "total-clusters": 16384, "allocated-clusters": 2,
        "fragmented-clusters": 0, "compressed-clusters": 0, "filename": "/p/a.qcow2", "format": "qcow2",
        "messages": []})");
}

} // namespace

TEST_CASE("vol-check says a clean image is clean, as qemu-img check does") {
    CHECK(check_report_text(clean_result()) ==
          "No errors were found on the image.\n"
          "2/16384 = 0.01% allocated, 0.00% fragmented, 0.00% compressed "
          "clusters\n"
          "Image end offset: 262144\n");
    CHECK(check_exit_code(clean_result()) == 0);
}

TEST_CASE("vol-check reports leaks with exit code 3 and the messages first") {
    auto result = clean_result();
    result["leaks"] = 2;
    result["messages"] = {"Leaked cluster 5 refcount=1 reference=0",
                          "Leaked cluster 6 refcount=1 reference=0"};
    auto text = check_report_text(result);
    CHECK(text.starts_with("Leaked cluster 5 refcount=1 reference=0\nLeaked cluster 6"));
    CHECK(text.find("\n2 leaked clusters were found on the image.\n"
                    "This means waste of disk space, but no harm to data.\n") != std::string::npos);
    CHECK(text.find("No errors") == std::string::npos);
    CHECK(check_exit_code(result) == 3);
}

TEST_CASE("vol-check: corruptions win over leaks for the exit code, a failed check over both") {
    auto result = clean_result();
    result["leaks"] = 1;
    result["corruptions"] = 4;
    CHECK(check_exit_code(result) == 2);
    CHECK(check_report_text(result).find("\n4 errors were found on the image.\n") != std::string::npos);
    result["check-errors"] = 1;
    CHECK(check_exit_code(result) == 1);
    CHECK(check_report_text(result).find("1 internal errors have occurred") != std::string::npos);
}

TEST_CASE("vol-check --repair says what it repaired before the second look") {
    auto result = clean_result();
    result["leaks-fixed"] = 3;
    CHECK(check_report_text(result).starts_with("The following inconsistencies were found and repaired:\n\n"
                                                "    3 leaked clusters\n    0 corruptions\n\n"
                                                "Double checking the fixed image now...\n"
                                                "No errors were found on the image.\n"));
    CHECK(check_exit_code(result) == 0);
}

TEST_CASE("vol-check of a result without cluster counts prints no allocation line") {
    auto text = check_report_text(nlohmann::json::parse(R"({"corruptions": 0, "leaks": 0})"));
    CHECK(text == "No errors were found on the image.\n");
}

TEST_CASE("vol-measure prints qemu-img measure's two lines") {
    auto result = nlohmann::json::parse(R"({"required": 393216, "fully-allocated": 1074135040})");
    CHECK(measure_report_text(result) == "required size: 393216\nfully allocated size: 1074135040\n");
}

TEST_CASE("vol-map shows one row per extent, missing keys as '-'") {
    auto extents = nlohmann::json::parse(R"([
        {"start": 0, "length": 65536, "depth": 0, "present": true, "zero": false, "data": true,
         "compressed": false, "offset": 327680},
        {"start": 65536, "length": 1048510464, "depth": 0, "present": false, "zero": true, "data": false,
         "compressed": false}])");
    CHECK(map_report_text(extents) == "START      LENGTH  DEPTH  PRESENT  ZERO  DATA  COMPRESSED  OFFSET\n"
                                      "    0       65536      0  yes      no    yes   no          327680\n"
                                      "65536  1048510464      0  no       yes   no    no               -\n");
}
