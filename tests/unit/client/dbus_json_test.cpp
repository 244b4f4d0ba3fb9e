#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "common/error.hpp"
#include "dbus_json.hpp"

using vmstor::client::ManagedObjects;
using vmstor::client::objects_with_interface;
using vmstor::client::properties_to_json;
using vmstor::client::PropertyMap;
using vmstor::client::variant_to_json;

TEST_CASE("sizes stay exact unsigned numbers in JSON, even above 2^53") {
    std::uint64_t big = (std::uint64_t{1} << 60) + 1;
    auto json = variant_to_json(sdbus::Variant(big));
    REQUIRE(json.is_number_unsigned());
    CHECK(json.get<std::uint64_t>() == big);
}

TEST_CASE("basic D-Bus types keep their JSON kind") {
    CHECK(variant_to_json(sdbus::Variant(true)) == true);
    CHECK(variant_to_json(sdbus::Variant(std::string("running"))) == "running");
    CHECK(variant_to_json(sdbus::Variant(0.25)) == 0.25);
    CHECK(variant_to_json(sdbus::Variant(std::uint32_t{1000})) == 1000);
    CHECK(variant_to_json(sdbus::Variant(std::int32_t{-3})) == -3);
    CHECK(variant_to_json(sdbus::Variant(sdbus::ObjectPath("/org/vmstor/Storage1/pool/p1"))) ==
          "/org/vmstor/Storage1/pool/p1");
}

TEST_CASE("the containers of the API become arrays and objects") {
    CHECK(variant_to_json(sdbus::Variant(std::vector<std::string>{"vm1", "vm2"})) ==
          nlohmann::json({"vm1", "vm2"}));
    CHECK(variant_to_json(
              sdbus::Variant(std::map<std::string, double>{{"warning", 0.8}, {"critical", 0.95}})) ==
          nlohmann::json({{"warning", 0.8}, {"critical", 0.95}}));

    std::vector<sdbus::Struct<std::string, std::string>> chain{{"/img/overlay.qcow2", "qcow2"},
                                                               {"/img/base.raw", "raw"}};
    CHECK(variant_to_json(sdbus::Variant(chain)) ==
          nlohmann::json::parse(R"([["/img/overlay.qcow2","qcow2"],["/img/base.raw","raw"]])"));

    std::vector<sdbus::ObjectPath> jobs{sdbus::ObjectPath("/org/vmstor/Storage1/job/1")};
    CHECK(variant_to_json(sdbus::Variant(jobs)) == nlohmann::json({"/org/vmstor/Storage1/job/1"}));
}

TEST_CASE("nested a{sv} values are converted all the way down") {
    PropertyMap dir{{"supported", sdbus::Variant(true)},
                    {"volume_formats", sdbus::Variant(std::vector<std::string>{"raw", "qcow2"})}};
    PropertyMap capabilities{{"dir", sdbus::Variant(dir)}};
    std::vector<PropertyMap> sources{capabilities};

    auto json = variant_to_json(sdbus::Variant(sources));
    CHECK(json == nlohmann::json::parse(R"([{"dir":{"supported":true,"volume_formats":["raw","qcow2"]}}])"));
}

TEST_CASE("a D-Bus type the client cannot show is reported, not guessed") {
    std::map<std::uint32_t, std::string> unusual{{1, "one"}};
    try {
        variant_to_json(sdbus::Variant(unusual));
        FAIL("no error for a{us}");
    } catch (const vmstor::Error& error) {
        CHECK(error.code() == vmstor::ErrorCode::NotSupported);
        CHECK(std::string(error.what()).find("a{us}") != std::string::npos);
    }
}

TEST_CASE("objects_with_interface picks the objects of one interface and adds their path") {
    ManagedObjects objects;
    objects[sdbus::ObjectPath("/org/vmstor/Storage1/pool/p1")]["org.vmstor.Storage1.Pool"] = {
        {"Name", sdbus::Variant(std::string("p1"))}};
    objects[sdbus::ObjectPath("/org/vmstor/Storage1/pool/p1/volume/v")]["org.vmstor.Storage1.Volume"] = {
        {"Name", sdbus::Variant(std::string("v"))}};
    objects[sdbus::ObjectPath("/org/vmstor/Storage1")]["org.vmstor.Storage1.Manager"] = {};

    auto pools = objects_with_interface(objects, "org.vmstor.Storage1.Pool");
    REQUIRE(pools.size() == 1);
    CHECK(pools[0]["Name"] == "p1");
    CHECK(pools[0]["ObjectPath"] == "/org/vmstor/Storage1/pool/p1");
    CHECK(objects_with_interface(objects, "org.vmstor.Storage1.Job").empty());
    CHECK(properties_to_json({}) == nlohmann::json::object());
}
