#include <catch2/catch.hpp>

#include "common/error.hpp"
#include "dbus_json.hpp"
#include "requests.hpp"

using namespace vmstor::client;

TEST_CASE("object paths escape names the way the daemon does") {
    CHECK(pool_object_path("default") == "/org/vmstor/Storage1/pool/default");
    CHECK(pool_object_path("my-pool") == "/org/vmstor/Storage1/pool/my_2dpool");
    CHECK(volume_object_path("p1", "disk.qcow2") == "/org/vmstor/Storage1/pool/p1/volume/disk_2eqcow2");
    CHECK(pool_object_path("") == "/org/vmstor/Storage1/pool/_");
}

TEST_CASE("pool-create sends only the definition keys that were given") {
    PoolCreateRequest request;
    request.target_path = "/srv/pool";
    auto definition = properties_to_json(pool_definition(request));
    CHECK(definition == nlohmann::json({{"target.path", "/srv/pool"}}));
    CHECK(pool_definition(PoolCreateRequest{}).empty());
}

TEST_CASE("pool-create maps every source option to its dbus-api.md key and type") {
    PoolCreateRequest request;
    request.source_devices = {"/dev/sdb", "/dev/sdc"};
    request.source_host = "nas";
    request.source_dir = "/export";
    request.source_name = "vg0";
    request.source_format = "lvm2";
    auto definition = pool_definition(request);
    CHECK(definition.at("source.device").peekValueType() == "as");
    CHECK(properties_to_json(definition) == nlohmann::json::parse(R"({
        "source.device": ["/dev/sdb", "/dev/sdc"], "source.host": "nas", "source.dir": "/export",
        "source.name": "vg0", "source.format": "lvm2"})"));
}

TEST_CASE("pool-create leaves build, start and autostart to the daemon's default unless turned off") {
    CHECK(pool_create_options(PoolCreateRequest{}).empty());
    PoolCreateRequest request;
    request.build = false;
    request.autostart = false;
    CHECK(properties_to_json(pool_create_options(request)) ==
          nlohmann::json({{"build", false}, {"autostart", false}}));
}

TEST_CASE("vol-create maps its options with the contract's types") {
    VolumeCreateRequest request;
    request.format = "qcow2";
    request.preallocation = "metadata";
    request.cluster_size = 65536;
    auto options = volume_create_options(request);
    CHECK(options.at("cluster_size").peekValueType() == "t");
    CHECK(properties_to_json(options) ==
          nlohmann::json::parse(R"({"format":"qcow2","preallocation":"metadata","cluster_size":65536})"));
    CHECK(volume_create_options(VolumeCreateRequest{}).empty());
}

TEST_CASE("a backing given as POOL/VOLUME is sent as the volume's object path") {
    VolumeCreateRequest request;
    request.backing = "images/base.qcow2";
    request.backing_format = "qcow2";
    auto options = volume_create_options(request);
    CHECK(options.at("backing").peekValueType() == "o");
    CHECK(properties_to_json(options)["backing"] == "/org/vmstor/Storage1/pool/images/volume/base_2eqcow2");
    CHECK(properties_to_json(options)["backing_format"] == "qcow2");
}

TEST_CASE("a backing given as an absolute path is sent as a path string") {
    VolumeCreateRequest request;
    request.backing = "/var/lib/images/base.img";
    auto options = volume_create_options(request);
    CHECK(options.at("backing").peekValueType() == "s");
    CHECK(properties_to_json(options)["backing"] == "/var/lib/images/base.img");
}

TEST_CASE("vol-create refuses a backing that is neither POOL/VOLUME nor an absolute path") {
    for (const char* backing : {"base.qcow2", "a/b/c", "pool/", "p//v"}) {
        VolumeCreateRequest request;
        request.backing = backing;
        INFO(backing);
        CHECK_THROWS_AS(volume_create_options(request), vmstor::Error);
    }
    VolumeCreateRequest without_backing;
    without_backing.backing_format = "raw";
    CHECK_THROWS_AS(volume_create_options(without_backing), vmstor::Error);
}

TEST_CASE("vol-resize asks for shrink only when --shrink is given") {
    CHECK(volume_resize_options(false).empty());
    CHECK(properties_to_json(volume_resize_options(true)) == nlohmann::json({{"shrink", true}}));
}

TEST_CASE("a job is named by its number or its whole object path") {
    CHECK(job_object_path("7") == "/org/vmstor/Storage1/job/7");
    CHECK(job_object_path("/org/vmstor/Storage1/job/12") == "/org/vmstor/Storage1/job/12");
    for (const char* bad : {"", "x", "-1", "7a", "/org/vmstor/Storage1/job/", "/org/vmstor/Storage1/pool/7",
                            "/org/vmstor/Storage1/job/7/x", "99999999999999999999"})
        CHECK_THROWS_AS(job_object_path(bad), vmstor::Error);
}

TEST_CASE("snapshot paths hang under their volume, escaped like every name") {
    CHECK(snapshot_object_path("p1", "disk", "before upgrade") ==
          "/org/vmstor/Storage1/pool/p1/volume/disk/snapshot/before_20upgrade");
}

TEST_CASE("vol-clone and vol-convert send only the copy options given") {
    CHECK(copy_options(CopyRequest{}).empty());
    CopyRequest request;
    request.format = "qcow2";
    request.compress = true;
    request.compression_type = "zstd";
    request.cluster_size = 65536;
    auto options = copy_options(request);
    CHECK(options.at("compress").peekValueType() == "b");
    CHECK(options.at("cluster_size").peekValueType() == "t");
    CHECK(properties_to_json(options) ==
          nlohmann::json::parse(
              R"({"format": "qcow2", "compress": true, "compression_type": "zstd", "cluster_size": 65536})"));
}

TEST_CASE("--no-sync sends sync=false as a b") {
    CopyRequest request;
    request.no_sync = true;
    auto options = copy_options(request);
    CHECK(options.at("sync").peekValueType() == "b");
    CHECK(properties_to_json(options) == nlohmann::json::parse(R"({"sync": false})"));
}

TEST_CASE("a compression type without --compress is refused before anything is sent") {
    CopyRequest request;
    request.compression_type = "zlib";
    CHECK_THROWS_AS(copy_options(request), vmstor::Error);
}

TEST_CASE("vol-upload and vol-download send offset and length as t, sparse only when asked") {
    CHECK(transfer_options(TransferRequest{}).empty());
    auto options = transfer_options(TransferRequest{1048576, 4096, true});
    CHECK(options.at("offset").peekValueType() == "t");
    CHECK(options.at("length").peekValueType() == "t");
    CHECK(properties_to_json(options) ==
          nlohmann::json::parse(R"({"offset": 1048576, "length": 4096, "sparse": true})"));
    CHECK(properties_to_json(transfer_options(TransferRequest{0, std::nullopt, false})) ==
          nlohmann::json::parse(R"({"offset": 0})"));
}

TEST_CASE("vol-import sends the new volume's format and the stream's options, never an offset") {
    CHECK(import_options("", std::nullopt, TransferRequest{}).empty());
    CHECK(properties_to_json(import_options("qcow2", 2097152, TransferRequest{std::nullopt, 512, true})) ==
          nlohmann::json::parse(
              R"({"format": "qcow2", "cluster_size": 2097152, "length": 512, "sparse": true})"));
    CHECK_THROWS_AS(import_options("raw", std::nullopt, TransferRequest{4096, std::nullopt, false}),
                    vmstor::Error);
}

TEST_CASE("vol-check, vol-measure and vol-rebase map their flags to their keys") {
    CHECK(check_options("").empty());
    CHECK(properties_to_json(check_options("leaks")) == nlohmann::json::parse(R"({"repair": "leaks"})"));
    CHECK(measure_options("", std::nullopt).empty());
    CHECK(properties_to_json(measure_options("raw", 65536)) ==
          nlohmann::json::parse(R"({"format": "raw", "cluster_size": 65536})"));
    CHECK(rebase_options("", false).empty());
    CHECK(properties_to_json(rebase_options("qcow2", true)) ==
          nlohmann::json::parse(R"({"backing_format": "qcow2", "unsafe": true})"));
}
