// The plugin's config decoding: cty MessagePack to JSON, then the typed plugin and task configs,
// with every refusal naming the key and the value.
#include <gtest/gtest.h>

#include <msgpack.hpp>

#include "common/error.hpp"
#include "nomad/config.hpp"
#include "nomad/cty_msgpack.hpp"

namespace runscope::nomad {
namespace {

// Packs a JSON value the way cty/msgpack does (objects as maps, null as nil).
void pack(msgpack::packer<msgpack::sbuffer>& p, const nlohmann::json& v) {
  if (v.is_null()) p.pack_nil();
  else if (v.is_boolean()) p.pack(v.get<bool>());
  else if (v.is_number_unsigned()) p.pack(v.get<std::uint64_t>());
  else if (v.is_number_integer()) p.pack(v.get<std::int64_t>());
  else if (v.is_number_float()) p.pack(v.get<double>());
  else if (v.is_string()) p.pack(v.get<std::string>());
  else if (v.is_array()) {
    p.pack_array(static_cast<std::uint32_t>(v.size()));
    for (const auto& item : v) pack(p, item);
  } else {
    p.pack_map(static_cast<std::uint32_t>(v.size()));
    for (const auto& [k, item] : v.items()) {
      p.pack(k);
      pack(p, item);
    }
  }
}

std::string cty(const nlohmann::json& v) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> p(buf);
  pack(p, v);
  return std::string(buf.data(), buf.size());
}

std::string refusal(const std::function<void()>& body) {
  try {
    body();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::invalid_argument);
    return e.what();
  }
  ADD_FAILURE() << "not refused";
  return "";
}

TaskConfig task(const nlohmann::json& v) { return parse_task_config(decode_cty_msgpack(cty(v), "task config")); }

TEST(CtyMessagePack, DecodesObjectsListsNumbersAndNil) {
  nlohmann::json v = {{"command", "/bin/sh"}, {"args", {"-c", "x"}}, {"cores", 2}, {"weight", -3},
                      {"ratio", 0.5}, {"user", nullptr}, {"env", {{"A", "1"}}}, {"on", true}};
  EXPECT_EQ(decode_cty_msgpack(cty(v), "task config"), v);
}

TEST(CtyMessagePack, RefusesUnknownValuesGarbageTrailingBytesAndDepth) {
  const std::string unknown("\x81\xa1x\xd4\x00\x00", 6);  // {"x": ext type 0}: cty's unknown value
  EXPECT_NE(refusal([&] { decode_cty_msgpack(unknown, "task config"); }).find("x is unknown"), std::string::npos);
  EXPECT_NE(refusal([&] { decode_cty_msgpack("\xc1", "task config"); }).find("not valid MessagePack"),
            std::string::npos);
  EXPECT_NE(refusal([&] { decode_cty_msgpack(cty({{"a", 1}}) + "\x01", "task config"); }).find("1 bytes after"),
            std::string::npos);
  EXPECT_NE(refusal([&] { decode_cty_msgpack("", "plugin config"); }).find("plugin config: empty"), std::string::npos);
  std::string deep(40, '\x91');  // 40 nested one-element arrays
  deep += '\xc0';
  refusal([&] { decode_cty_msgpack(deep, "task config"); });
  const std::string int_key("\x81\x01\x02", 3);  // {1: 2}
  EXPECT_NE(refusal([&] { decode_cty_msgpack(int_key, "task config"); }).find("not a string"), std::string::npos);
}

TEST(TaskConfigBlock, TakesEveryKeyOfTheSchema) {
  auto c = task({{"command", "/usr/bin/python3"}, {"args", {"-m", "http.server"}}, {"cores", 2},
                 {"memory_max", "512M"}, {"cpu_weight", 200}, {"pids_max", 100}, {"user", "nobody"},
                 {"env", {{"K", "V"}}}, {"kill_signal", "SIGINT"}, {"kill_timeout", "7s"}});
  EXPECT_EQ(c.command, "/usr/bin/python3");
  EXPECT_EQ(c.args, (std::vector<std::string>{"-m", "http.server"}));
  EXPECT_EQ(c.cores, 2u);
  EXPECT_EQ(c.memory_max, 512ull << 20);
  EXPECT_EQ(c.cpu_weight, 200u);
  EXPECT_EQ(c.pids_max, 100u);
  EXPECT_EQ(c.user, "nobody");
  EXPECT_EQ(c.env.at("K"), "V");
  EXPECT_EQ(c.kill_signal, 2);
  EXPECT_EQ(c.kill_timeout, std::chrono::seconds(7));
  // Every attribute of the schema arrives; the unset ones as nil.
  auto minimal = task({{"command", "/bin/true"}, {"args", nullptr}, {"cores", nullptr}, {"env", nullptr}});
  EXPECT_TRUE(minimal.args.empty());
  EXPECT_FALSE(minimal.cores);
}

TEST(TaskConfigBlock, NamesTheKeyAndValueItRefuses) {
  auto says = [](const nlohmann::json& v, const std::string& text) {
    auto why = refusal([&] { task(v); });
    EXPECT_NE(why.find(text), std::string::npos) << why;
  };
  says({{"args", {"x"}}}, "task config: command: is required");
  says({{"command", "/bin/true"}, {"memory_max", "lots"}}, "task config: memory_max:");
  says({{"command", "/bin/true"}, {"cores", 0}}, "task config: cores: must be a whole number from 1 to 4096, got 0");
  says({{"command", "/bin/true"}, {"cores", 1.5}}, "got 1.5");
  says({{"command", "/bin/true"}, {"cpu_weight", 20000}}, "cpu_weight");
  says({{"command", "/bin/true"}, {"kill_signal", "SIGNOPE"}}, "task config: kill_signal:");
  says({{"command", "/bin/true"}, {"kill_timeout", "soon"}}, "task config: kill_timeout:");
  says({{"command", "/bin/true"}, {"env", {{"A", 1}}}}, "task config: env.A: must be a string, got 1");
  says({{"command", "/bin/true"}, {"args", {"a", 2}}}, "args[1]");
  says({{"command", "/bin/true"}, {"image", "x"}}, "task config: image: unknown key");
  says({"not", "an object"}, "must be an object");
}

TEST(PluginConfigBlock, DefaultsToTheSystemBusAndNamesBadValues) {
  auto c = parse_plugin_config(decode_cty_msgpack(cty({{"bus", nullptr}, {"fingerprint_period", nullptr}}), "p"));
  EXPECT_EQ(c.bus, "system");
  EXPECT_EQ(c.fingerprint_period, std::chrono::seconds(10));
  c = parse_plugin_config({{"bus", "unix:path=/run/x"}, {"fingerprint_period", "2s"}});
  EXPECT_EQ(c.bus, "unix:path=/run/x");
  EXPECT_EQ(c.fingerprint_period, std::chrono::seconds(2));
  EXPECT_NE(refusal([] { parse_plugin_config({{"fingerprint_period", "1ms"}}); }).find("at least 100ms"),
            std::string::npos);
  EXPECT_NE(refusal([] { parse_plugin_config({{"bus", ""}}); }).find("plugin config: bus"), std::string::npos);
}

TEST(Schemas, DeclareEveryTaskConfigKeyWithItsCtyTypeAndThePluginDefaults) {
  auto spec = task_config_spec();
  const auto& attrs = spec.object().attributes();
  EXPECT_EQ(attrs.size(), 10u);
  EXPECT_TRUE(attrs.at("command").attr().required());
  EXPECT_EQ(attrs.at("args").attr().type(), "list(string)");
  EXPECT_EQ(attrs.at("env").attr().type(), "map(string)");
  EXPECT_EQ(attrs.at("cores").attr().type(), "number");
  auto plugin = plugin_config_spec();
  EXPECT_EQ(plugin.object().attributes().at("bus").default_().default_().literal().value(), "\"system\"");
  EXPECT_EQ(plugin.object().attributes().at("bus").default_().primary().attr().type(), "string");
}

}  // namespace
}  // namespace runscope::nomad
