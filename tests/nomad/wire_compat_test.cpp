// The wire check: the descriptor set protoc builds from proto/ (the same files the plugin is
// generated from) against the protocol facts in tests/nomad/wire_schema.txt (a verbatim copy of
// the team's notes, read from Nomad v1.6.1 and go-plugin v1.4.10): every service, method,
// streaming flag, message field (number, name, type, label, oneof), reserved range and enum
// value. A later edit of a .proto that would break the wire fails here.
#include <gtest/gtest.h>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>

#include <filesystem>
#include <regex>
#include <set>
#include <sstream>

#include "common/file.hpp"

namespace runscope {
namespace {

namespace gp = google::protobuf;

const std::set<std::string> kScalars = {"double", "float", "int32", "int64", "uint32", "uint64", "sint32", "sint64",
                                        "fixed32", "fixed64", "sfixed32", "sfixed64", "bool", "string", "bytes"};

class SchemaChecker {
 public:
  explicit SchemaChecker(const gp::DescriptorPool& pool) : pool_(pool) {}

  std::vector<std::string> check(const std::string& schema) {
    std::istringstream in(schema);
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("# schema: ", 0) == 0) {
        finish();
        optional_section_ = line.find("go-plugin") != std::string::npos;
      } else if (!line.empty() && line[0] != '#') {
        take(line);
      }
    }
    finish();
    return failures_;
  }
  const std::vector<std::string>& skipped() const { return skipped_; }

 private:
  std::string resolve(const std::string& name) const {
    if (kScalars.count(name)) return name;
    return name[0] == '.' ? name.substr(1) : package_ + "." + name;
  }
  void fail(const std::string& what) { failures_.push_back(what); }
  void finish() {
    if (message_ && listed_ != message_->field_count()) {
      fail(message_->full_name() + ": " + std::to_string(message_->field_count()) + " fields, the notes list " +
           std::to_string(listed_));
    }
    if (service_ && listed_ != service_->method_count()) fail(service_->full_name() + ": method count differs");
    if (enum_ && listed_ != enum_->value_count()) fail(enum_->full_name() + ": value count differs");
    message_ = nullptr, service_ = nullptr, enum_ = nullptr, listed_ = 0, skipping_ = false;
  }
  void take(const std::string& line) {
    std::istringstream words(line);
    std::vector<std::string> w;
    for (std::string s; words >> s;) w.push_back(s);
    if (line[0] != ' ') return header(w);
    if (skipping_) return;
    ++listed_;
    if (service_) return method(line);
    if (enum_) return value(w);
    if (message_) return field(w);
    fail("a member line outside a block: " + line);
  }
  void header(const std::vector<std::string>& w) {
    finish();
    if (w[0] == "package") {
      package_ = w[1];
      return;
    }
    auto name = resolve(w[1]);
    if (w[0] == "service") service_ = pool_.FindServiceByName(name);
    if (w[0] == "message") message_ = pool_.FindMessageTypeByName(name);
    if (w[0] == "enum") {
      enum_ = pool_.FindEnumTypeByName(name);
      bool alias = w.size() > 2 && w[2] == "allow_alias";
      if (enum_ && enum_->options().allow_alias() != alias) fail(name + ": allow_alias differs");
    }
    if (!service_ && !message_ && !enum_) {
      // go-plugin's services are checked where the project declares them (gRPC's own library
      // serves grpc.health.v1, so no .proto of ours declares it).
      if (optional_section_ && !declares_package()) {
        skipped_.push_back(name);
        skipping_ = true;
        return;
      }
      fail(w[0] + " " + name + " is not declared");
      skipping_ = true;
    }
  }
  bool declares_package() const {
    for (const auto& p : packages_) {
      if (p == package_) return true;
    }
    return false;
  }
  void method(const std::string& line) {
    static const std::regex re(R"(^\s+(\w+)\((stream )?([\w.]+)\) -> (stream )?([\w.]+)$)");
    std::smatch m;
    if (!std::regex_match(line, m, re)) return fail("unreadable method line: " + line);
    auto* md = service_->FindMethodByName(m[1].str());
    if (!md) return fail(service_->full_name() + "." + m[1].str() + " is missing");
    auto where = md->full_name();
    if (md->input_type()->full_name() != resolve(m[3])) fail(where + ": request " + md->input_type()->full_name());
    if (md->output_type()->full_name() != resolve(m[5])) fail(where + ": response " + md->output_type()->full_name());
    if (md->client_streaming() != m[2].matched) fail(where + ": client streaming differs");
    if (md->server_streaming() != m[4].matched) fail(where + ": server streaming differs");
  }
  void value(const std::vector<std::string>& w) {
    auto* v = enum_->FindValueByName(w[1]);
    if (!v || v->number() != std::stoi(w[0])) fail(enum_->full_name() + "." + w[1] + " is not " + w[0]);
  }
  std::string type_of(const gp::FieldDescriptor* f) const {
    if (f->message_type()) return f->message_type()->full_name();
    if (f->enum_type()) return f->enum_type()->full_name();
    return f->type_name();
  }
  void field(const std::vector<std::string>& w) {
    if (w[0] == "reserved") {
      --listed_;
      bool ok = w[1][0] == '"' ? message_->IsReservedName(w[1].substr(1, w[1].size() - 2))
                               : message_->IsReservedNumber(std::stoi(w[1]));
      if (!ok) fail(message_->full_name() + ": reserved " + w[1] + " missing");
      return;
    }
    auto where = message_->full_name() + "." + w[1];
    auto* f = message_->FindFieldByName(w[1]);
    if (!f) return fail(where + " is missing");
    if (f->number() != std::stoi(w[0])) fail(where + ": number " + std::to_string(f->number()) + ", want " + w[0]);
    std::size_t i = 2;
    std::string label = (w[i] == "repeated" || w[i] == "optional") ? w[i++] : "";
    std::string type = w[i++];
    if (type.rfind("map<", 0) == 0) {  // "map<string," "V>" were split at the space
      type += " " + w[i++];
      auto kv = type.substr(4, type.size() - 5);
      auto comma = kv.find(", ");
      if (!f->is_map() || type_of(f->message_type()->map_key()) != resolve(kv.substr(0, comma)) ||
          type_of(f->message_type()->map_value()) != resolve(kv.substr(comma + 2))) {
        fail(where + ": not " + type);
      }
    } else if (type_of(f) != resolve(type)) {
      fail(where + ": type " + type_of(f) + ", want " + resolve(type));
    }
    if ((label == "repeated") != (f->is_repeated() && !f->is_map())) fail(where + ": repeated differs");
    if ((label == "optional") != f->has_optional_keyword()) fail(where + ": optional differs");
    std::string oneof = i < w.size() && w[i].rfind("oneof=", 0) == 0 ? w[i].substr(6) : "";
    auto* o = f->real_containing_oneof();
    if ((o ? o->name() : "") != oneof) fail(where + ": oneof differs");
  }

 public:
  std::vector<std::string> packages_;

 private:
  const gp::DescriptorPool& pool_;
  std::string package_;
  bool optional_section_ = false, skipping_ = false;
  const gp::ServiceDescriptor* service_ = nullptr;
  const gp::Descriptor* message_ = nullptr;
  const gp::EnumDescriptor* enum_ = nullptr;
  int listed_ = 0;
  std::vector<std::string> failures_, skipped_;
};

class TheProjectsProtoFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    gp::FileDescriptorSet set;
    ASSERT_TRUE(set.ParseFromString(read_file(RUNSCOPE_NOMAD_DESCRIPTORS))) << RUNSCOPE_NOMAD_DESCRIPTORS;
    for (const auto& file : set.file()) {  // --include_imports lists dependencies first
      ASSERT_NE(pool_.BuildFile(file), nullptr) << file.name();
      packages_.push_back(file.package());
    }
    schema_ = read_file(RUNSCOPE_NOMAD_WIRE_SCHEMA);
  }
  std::vector<std::string> check(const std::string& schema) {
    SchemaChecker checker(pool_);
    checker.packages_ = packages_;
    auto failures = checker.check(schema);
    skipped_ = checker.skipped();
    return failures;
  }

  gp::DescriptorPool pool_;
  std::vector<std::string> packages_;
  std::string schema_;
  std::vector<std::string> skipped_;
};

TEST_F(TheProjectsProtoFiles, MatchEveryServiceMethodAndFieldTheNotesList) {
  auto failures = check(schema_);
  for (const auto& f : failures) ADD_FAILURE() << f;
  // Only gRPC's health service is served by the library rather than declared by us.
  EXPECT_EQ(skipped_, (std::vector<std::string>{"grpc.health.v1.Health", "grpc.health.v1.HealthCheckRequest",
                                                 "grpc.health.v1.HealthCheckResponse",
                                                 "grpc.health.v1.HealthCheckResponse.ServingStatus"}));
}

TEST_F(TheProjectsProtoFiles, AreCaughtWhenAFieldNumberStreamingFlagOrTypeDrifts) {
  for (auto [from, to] : std::vector<std::pair<std::string, std::string>>{
           {"  4   driver_state                 bytes", "  5   driver_state                 bytes"},
           {"TaskStats(TaskStatsRequest) -> stream TaskStatsResponse", "TaskStats(TaskStatsRequest) -> TaskStatsResponse"},
           {"  2   signal                       int32", "  2   signal                       int64"},
           {"  2   DRIVER", "  1   DRIVER"}}) {
    auto drifted = schema_;
    auto at = drifted.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    drifted.replace(at, from.size(), to);
    EXPECT_FALSE(check(drifted).empty()) << "not caught: " << to;
  }
}

// The in-tree copy still says what the team's notes say, when the notes are beside the tree
// (shared/ next to the clone, as CI and the lead's tree have it).
TEST_F(TheProjectsProtoFiles, UseTheSameSchemaAsTheTeamsProtocolNotes) {
  std::optional<std::string> notes;
  for (auto up : {"../shared", "../../shared", "../../../shared"}) {
    auto path = std::filesystem::path(RUNSCOPE_SOURCE_DIR) / up / "notes/nomad-plugin-protocol.md";
    if ((notes = read_file_if_exists(path))) break;
  }
  if (!notes) {
    std::cout << "[ NOTE ] shared/notes/nomad-plugin-protocol.md is not beside this tree; "
                 "tests/nomad/wire_schema.txt is the reference\n";
    return;
  }
  std::string blocks;
  std::istringstream in(*notes);
  bool inside = false;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("<!-- schema: ", 0) == 0) {
      blocks += "# schema: " + line.substr(13, line.find(' ', 13) - 13) + "\n";
      std::getline(in, line);  // the opening fence
      inside = true;
    } else if (inside && line == "```") {
      inside = false;
    } else if (inside) {
      blocks += line + "\n";
    }
  }
  auto copy = schema_.substr(schema_.find("# schema: "));
  EXPECT_EQ(copy, blocks);
}

}  // namespace
}  // namespace runscope
