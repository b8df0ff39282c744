#include "api/errors.hpp"

#include <array>
#include <utility>

namespace runscope::api {
namespace {

constexpr std::array<std::pair<ErrorKind, const char*>, 11> kNames{{
    {ErrorKind::invalid_argument, "InvalidSpec"},
    {ErrorKind::config, "InvalidConfig"},
    {ErrorKind::not_found, "NotFound"},
    {ErrorKind::unsupported, "Unsupported"},
    {ErrorKind::conflict, "Conflict"},
    {ErrorKind::resources, "NotEnoughCores"},
    {ErrorKind::permission, "AccessDenied"},
    {ErrorKind::timeout, "Timeout"},
    {ErrorKind::system, "Failed"},
    {ErrorKind::bus, "BusError"},
    {ErrorKind::quota, "QuotaExceeded"},
}};

}  // namespace

std::string error_name(ErrorKind kind) {
  for (auto [k, name] : kNames)
    if (k == kind) return std::string(kErrorPrefix) + name;
  return std::string(kErrorPrefix) + "Failed";
}

ErrorKind error_kind(const std::string& name) {
  for (auto [k, short_name] : kNames)
    if (name == std::string(kErrorPrefix) + short_name) return k;
  return ErrorKind::bus;
}

}  // namespace runscope::api
