// Nomad sends configuration (the client's plugin block, a job task's config block) as a go-cty
// value encoded with cty's MessagePack encoding: objects as maps, lists as arrays, numbers as
// integers or floats, absent attributes as nil, unknown values as extension type 0. This turns
// that into JSON for the typed decoders, bounded so a hostile payload can't exhaust the plugin.
#pragma once

#include <cstddef>
#include <string_view>

#include <nlohmann/json.hpp>

namespace runscope::nomad {

inline constexpr std::size_t kMaxConfigBytes = 4u << 20;  // runscope's own spec limit
inline constexpr std::size_t kMaxConfigDepth = 32;

// Throws Error(invalid_argument) naming `what` ("task config") and the fault.
nlohmann::json decode_cty_msgpack(std::string_view bytes, std::string_view what);

}  // namespace runscope::nomad
