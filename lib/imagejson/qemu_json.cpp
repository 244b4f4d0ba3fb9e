#include "qemu_json.hpp"

#include <algorithm>
#include <cstdint>
#include <vector>

namespace vmstor::img {

namespace {

// QEMU's qdict hash (tdb_hash), modulo its bucket count.
unsigned qdict_bucket(const std::string& name) {
    std::uint32_t value = 0x238F13AFu * static_cast<std::uint32_t>(name.size());
    for (std::size_t i = 0; i < name.size(); ++i)
        value += static_cast<std::uint32_t>(static_cast<unsigned char>(name[i])) << (i * 5 % 24);
    return (1103515243u * value + 12345u) % 512u;
}

Json reorder(const Json& value) {
    if (value.is_array()) {
        Json out = Json::array();
        for (const auto& item : value)
            out.push_back(reorder(item));
        return out;
    }
    if (!value.is_object())
        return value;
    struct Key {
        std::string name;
        unsigned bucket;
        std::size_t inserted;
    };
    std::vector<Key> keys;
    for (auto it = value.begin(); it != value.end(); ++it)
        keys.push_back({it.key(), qdict_bucket(it.key()), keys.size()});
    std::stable_sort(keys.begin(), keys.end(), [](const Key& a, const Key& b) {
        return a.bucket != b.bucket ? a.bucket < b.bucket : a.inserted > b.inserted;
    });
    Json out = Json::object();
    for (const auto& k : keys)
        out[k.name] = reorder(value.at(k.name));
    return out;
}

void print(const Json& value, int indent, std::string& out) {
    if (!value.is_object() && !value.is_array()) {
        // Names read from an image may be invalid UTF-8: printed with U+FFFD instead of throwing.
        out += value.dump(-1, ' ', false, Json::error_handler_t::replace);
        return;
    }
    // QEMU puts even an empty container's closing bracket on its own line.
    const std::string inner(static_cast<std::size_t>(indent + 4), ' ');
    out += value.is_object() ? "{\n" : "[\n";
    bool first = true;
    for (auto it = value.begin(); it != value.end(); ++it) {
        if (!first)
            out += ",\n";
        first = false;
        out += inner;
        if (value.is_object())
            out += Json(it.key()).dump() + ": ";
        print(*it, indent + 4, out);
    }
    if (!first)
        out += "\n";
    out += std::string(static_cast<std::size_t>(indent), ' ');
    out += value.is_object() ? "}" : "]";
}

} // namespace

std::string qemu_json(const Json& value) {
    std::string out;
    print(reorder(value), 0, out);
    return out;
}

} // namespace vmstor::img
