#include "nomad/cty_msgpack.hpp"

#include <msgpack.hpp>

#include <string>

#include "common/error.hpp"

namespace runscope::nomad {
namespace {

[[noreturn]] void refuse(std::string_view what, const std::string& why) {
  throw Error(ErrorKind::invalid_argument, std::string(what) + ": " + why);
}

nlohmann::json to_json(const msgpack::object& o, std::string_view what, const std::string& path) {
  auto at = [&] { return path.empty() ? std::string("the top level") : path; };
  switch (o.type) {
    case msgpack::type::NIL: return nullptr;
    case msgpack::type::BOOLEAN: return o.via.boolean;
    case msgpack::type::POSITIVE_INTEGER: return o.via.u64;
    case msgpack::type::NEGATIVE_INTEGER: return o.via.i64;
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: return o.via.f64;
    case msgpack::type::STR: return std::string(o.via.str.ptr, o.via.str.size);
    case msgpack::type::BIN: return std::string(o.via.bin.ptr, o.via.bin.size);
    case msgpack::type::ARRAY: {
      auto out = nlohmann::json::array();
      for (std::uint32_t i = 0; i < o.via.array.size; ++i) {
        out.push_back(to_json(o.via.array.ptr[i], what, path + "[" + std::to_string(i) + "]"));
      }
      return out;
    }
    case msgpack::type::MAP: {
      auto out = nlohmann::json::object();
      for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
        const auto& kv = o.via.map.ptr[i];
        if (kv.key.type != msgpack::type::STR) refuse(what, "a map key at " + at() + " is not a string");
        std::string key(kv.key.via.str.ptr, kv.key.via.str.size);
        out[key] = to_json(kv.val, what, path.empty() ? key : path + "." + key);
      }
      return out;
    }
    case msgpack::type::EXT:
      // cty's marker for a value that is not known yet: Nomad resolves every value before it
      // sends a config, so one here means the sender is not Nomad or is broken.
      refuse(what, "the value at " + at() + " is unknown (MessagePack extension type " +
                       std::to_string(static_cast<int>(o.via.ext.type())) + ")");
  }
  refuse(what, "unexpected MessagePack type at " + at());
}

}  // namespace

nlohmann::json decode_cty_msgpack(std::string_view bytes, std::string_view what) {
  if (bytes.empty()) refuse(what, "empty (no MessagePack value)");
  if (bytes.size() > kMaxConfigBytes) {
    refuse(what, std::to_string(bytes.size()) + " bytes, over the limit of " + std::to_string(kMaxConfigBytes));
  }
  msgpack::object_handle handle;
  std::size_t offset = 0;
  try {
    msgpack::unpack_limit limit(kMaxConfigBytes, kMaxConfigBytes, kMaxConfigBytes, kMaxConfigBytes, kMaxConfigBytes,
                                kMaxConfigDepth);
    handle = msgpack::unpack(bytes.data(), bytes.size(), offset, nullptr, nullptr, limit);
  } catch (const std::exception& e) {
    refuse(what, std::string("not valid MessagePack (") + e.what() + ")");
  }
  if (offset != bytes.size()) {
    refuse(what, std::to_string(bytes.size() - offset) + " bytes after the MessagePack value");
  }
  return to_json(handle.get(), what, "");
}

}  // namespace runscope::nomad
