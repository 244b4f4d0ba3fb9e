#include <catch2/catch.hpp>

#include "output.hpp"

using namespace vmstor::client;

TEST_CASE("tables align columns, right-align numbers and leave no trailing blanks") {
    Table table{{{"NAME"}, {"SIZE", true}, {"PATH"}},
                {{"a", "1 KiB", "/x"}, {"longer-name", "10 GiB", "/y/z"}, {"b", "2 B", ""}}};
    CHECK(render_table(table) == "NAME           SIZE  PATH\n"
                                 "a             1 KiB  /x\n"
                                 "longer-name  10 GiB  /y/z\n"
                                 "b               2 B\n");
}

TEST_CASE("a table with no rows is its header line") {
    Table table{{{"NAME"}, {"STATE"}}, {}};
    CHECK(render_table(table) == "NAME  STATE\n");
}

TEST_CASE("fields align their values after the labels") {
    CHECK(render_fields({{"Name", "p1"}, {"Capacity", "10 GiB"}}) == "Name:     p1\nCapacity: 10 GiB\n");
}

TEST_CASE("property values are shown in units people read") {
    CHECK(display_value("Capacity", std::uint64_t{10737418240}) == "10 GiB");
    CHECK(display_value("Allocation", std::uint64_t{0}) == "0 B");
    CHECK(display_value("Autostart", true) == "yes");
    CHECK(display_value("Encrypted", false) == "no");
    CHECK(display_value("Overcommit", 1.5) == "150%");
    CHECK(display_value("Overcommit", 0.125) == "12.5%");
    CHECK(display_value("Thresholds", nlohmann::json({{"critical", 0.95}, {"warning", 0.8}})) ==
          "critical=95%, warning=80%");
    CHECK(display_value("Source", nlohmann::json({{"source.device", {"/dev/sdb", "/dev/sdc"}},
                                                  {"source.name", "vg"}})) ==
          "source.device=[/dev/sdb, /dev/sdc], source.name=vg");
    CHECK(display_value("UsedBy", nlohmann::json::array()) == "-");
    CHECK(display_value("UsedBy", nlohmann::json({"vm1", "vm2"})) == "vm1, vm2");
    CHECK(display_value("TargetPath", "") == "-");
    CHECK(display_value("StartedByUID", 1000u) == "1000");
}

TEST_CASE("a backing chain reads as path (format), nearest first") {
    auto chain = nlohmann::json::parse(R"([["/i/top.qcow2","qcow2"],["/i/base.raw","raw"]])");
    CHECK(display_value("BackingChain", chain) == "/i/top.qcow2 (qcow2), /i/base.raw (raw)");
}

TEST_CASE("object fields follow the given order, then the rest by name, then the object path") {
    auto object = nlohmann::json::parse(
        R"({"Zeta":"z","Name":"p1","Capacity":1024,"Alpha":"a","ObjectPath":"/org/vmstor/Storage1/pool/p1"})");
    auto fields = object_fields(object, {"Name", "Capacity", "Missing"});
    REQUIRE(fields.size() == 5);
    CHECK(fields[0] == std::pair<std::string, std::string>{"Name", "p1"});
    CHECK(fields[1] == std::pair<std::string, std::string>{"Capacity", "1 KiB"});
    CHECK(fields[2].first == "Alpha");
    CHECK(fields[3].first == "Zeta");
    CHECK(fields[4] == std::pair<std::string, std::string>{"ObjectPath", "/org/vmstor/Storage1/pool/p1"});
}

TEST_CASE("the pool table is sorted by name and shows sizes for people") {
    auto pools = nlohmann::json::parse(R"([
        {"Name":"zz","Type":"dir","State":"inactive","Autostart":false,"Capacity":0,"Allocation":0,"Available":0},
        {"Name":"aa","Type":"logical","State":"running","Autostart":true,
         "Capacity":2147483648,"Allocation":1073741824,"Available":1073741824}])");
    auto table = pool_table(pools);
    REQUIRE(table.rows.size() == 2);
    CHECK(table.rows[0] ==
          std::vector<std::string>{"aa", "logical", "running", "yes", "2 GiB", "1 GiB", "1 GiB"});
    CHECK(table.rows[1][0] == "zz");
    CHECK(table.rows[1][3] == "no");
}

TEST_CASE("the volume table shows a dash for what the daemon did not send") {
    auto volumes = nlohmann::json::parse(R"([{"Name":"v1","Capacity":1048576}])");
    auto table = volume_table(volumes);
    REQUIRE(table.rows.size() == 1);
    CHECK(table.rows[0] == std::vector<std::string>{"v1", "-", "1 MiB", "-", "-"});
}

TEST_CASE("sections show one block per key with the nested fields indented") {
    auto capabilities = nlohmann::json::parse(
        R"({"dir":{"supported":true,"volume_formats":["raw","qcow2"]},"zfs":{"supported":false}})");
    CHECK(render_sections(capabilities) == "dir\n"
                                           "  supported:      yes\n"
                                           "  volume_formats: raw, qcow2\n"
                                           "zfs\n"
                                           "  supported: no\n");
}

TEST_CASE("error lines keep only the last component of the D-Bus error name") {
    CHECK(error_line("org.vmstor.Storage1.Error.NotFound", "pool 'x' does not exist") ==
          "vmstorctl: NotFound: pool 'x' does not exist");
    CHECK(error_line("org.freedesktop.DBus.Error.ServiceUnknown", "no daemon") ==
          "vmstorctl: ServiceUnknown: no daemon");
    CHECK(error_line("NotFound", "m") == "vmstorctl: NotFound: m");
}

TEST_CASE("job-list shows path, operation, state, progress, rate and who started it") {
    auto jobs = nlohmann::json::parse(R"([
        {"ObjectPath": "/org/vmstor/Storage1/job/3", "Operation": "clone", "State": "running",
         "Progress": 0.5, "ProgressValid": true, "Rate": 10485760, "StartedByUID": 0},
        {"ObjectPath": "/org/vmstor/Storage1/job/4", "Operation": "check", "State": "completed",
         "Progress": 0.0, "ProgressValid": false, "Rate": 0, "StartedByUID": 1000}])");
    auto name = [](std::uint32_t uid) {
        return uid == 0 ? std::string("root") : "uid" + std::to_string(uid);
    };
    CHECK(render_table(job_table(jobs, name)) ==
          "JOB                         OPERATION  STATE      PROGRESS      RATE  STARTED BY\n"
          "/org/vmstor/Storage1/job/3  clone      running         50%  10 MiB/s  root\n"
          "/org/vmstor/Storage1/job/4  check      completed         -         -  uid1000\n");
}

TEST_CASE("snapshot-list shows id, name, sizes and the creation time in UTC") {
    auto snapshots = nlohmann::json::parse(R"([
        {"Name": "b", "Id": "2", "Created": 1700000000000000, "VMStateSize": 0, "VirtualSize": 1073741824},
        {"Name": "a", "Id": "1", "Created": 0, "VMStateSize": 0, "VirtualSize": 1073741824}])");
    CHECK(render_table(snapshot_table(snapshots)) ==
          "ID  NAME  VM STATE  VIRTUAL SIZE  CREATED\n"
          "1   a          0 B         1 GiB  -\n"
          "2   b          0 B         1 GiB  2023-11-14 22:13:20 UTC\n");
}
