#include "engine/runtime/builtin_stages.h"

#include <optional>

#include <rapidjson/document.h>
#include <rapidjson/pointer.h>

namespace switchboard::runtime {

namespace {

class Passthrough final : public core::Stage {
 public:
  core::StageResult process(core::PipelineMessage&) const override { return core::StageResult::proceed(); }
};

// Keeps a message when the value at `pointer` exists (exists=true), is absent (exists=false),
// equals one of `equals`, or differs from all of `not_equals`. Non-JSON payloads fail.
class JsonMatch final : public core::Stage {
 public:
  JsonMatch(std::string pointer, std::optional<bool> exists, std::vector<std::string> equals,
            std::vector<std::string> notEquals)
      : pointerText_(std::move(pointer)),
        pointer_(pointerText_.c_str()),
        exists_(exists),
        equals_(std::move(equals)),
        notEquals_(std::move(notEquals)) {}

  core::StageResult process(core::PipelineMessage& message) const override {
    rapidjson::Document doc;
    doc.Parse(message.payload.data(), message.payload.size());
    if (doc.HasParseError()) {
      return core::StageResult::failure(Error(ErrorCode::kStructure, "json-match filter: payload is not JSON"));
    }
    const rapidjson::Value* v = pointer_.Get(doc);
    std::string text;
    if (v != nullptr && v->IsString()) text.assign(v->GetString(), v->GetStringLength());
    else if (v != nullptr && v->IsInt64()) text = std::to_string(v->GetInt64());
    else if (v != nullptr && v->IsBool()) text = v->GetBool() ? "true" : "false";
    if (exists_ && (*exists_ != (v != nullptr))) {
      return core::StageResult::drop(pointerText_ + (*exists_ ? " is absent" : " is present"));
    }
    if (!equals_.empty()) {
      bool hit = false;
      for (const auto& e : equals_) hit = hit || (v != nullptr && e == text);
      if (!hit) return core::StageResult::drop(pointerText_ + " matches none of the accepted values");
    }
    for (const auto& e : notEquals_) {
      if (v != nullptr && e == text) return core::StageResult::drop(pointerText_ + " has an excluded value");
    }
    return core::StageResult::proceed();
  }

 private:
  std::string pointerText_;
  rapidjson::Pointer pointer_;
  std::optional<bool> exists_;
  std::vector<std::string> equals_;
  std::vector<std::string> notEquals_;
};

// Keeps a message whose metadata `key` equals one of `equals` (and none of `not_equals`); e.g.
// only WhatsApp Flow submissions (kind=flow) go on to the mapping, while status callbacks stop
// here, recorded as filtered.
class MetadataMatch final : public core::Stage {
 public:
  MetadataMatch(std::string key, std::vector<std::string> equals, std::vector<std::string> notEquals)
      : key_(std::move(key)), equals_(std::move(equals)), notEquals_(std::move(notEquals)) {}

  core::StageResult process(core::PipelineMessage& message) const override {
    const std::string* v = core::findMetadata(message.metadata, key_);
    if (!equals_.empty()) {
      bool hit = false;
      for (const auto& e : equals_) hit = hit || (v != nullptr && *v == e);
      if (!hit) return core::StageResult::drop(key_ + "=" + (v ? *v : std::string("(absent)")) + " is not accepted");
    }
    for (const auto& e : notEquals_) {
      if (v != nullptr && *v == e) return core::StageResult::drop(key_ + "=" + *v + " is excluded");
    }
    return core::StageResult::proceed();
  }

 private:
  std::string key_;
  std::vector<std::string> equals_;
  std::vector<std::string> notEquals_;
};

}  // namespace

void registerBuiltinStages(core::ConnectorRegistry& registry) {
  registry.addStage("passthrough", [](core::ConfigReader& config, const core::ConnectorContext&)
                                       -> Result<std::unique_ptr<core::Stage>> {
    if (auto r = config.finish(); !r) return std::unexpected(r.error());
    return std::make_unique<Passthrough>();
  });
  registry.addStage("json-match", [](core::ConfigReader& config, const core::ConnectorContext&)
                                      -> Result<std::unique_ptr<core::Stage>> {
    std::string pointer = config.requiredString("pointer", "JSON pointer to test, e.g. /kind");
    if (!pointer.empty() && (pointer.front() != '/' || !rapidjson::Pointer(pointer.c_str()).IsValid())) {
      config.invalid("pointer", "a valid JSON pointer starting with '/'");
    }
    std::optional<bool> exists = config.optionalBoolean("exists", "keep only when present (true) or absent (false)");
    auto equals = config.strings("equals", "keep only these values");
    auto notEquals = config.strings("not_equals", "drop these values");
    if (auto r = config.finish(); !r) return std::unexpected(r.error());
    return std::make_unique<JsonMatch>(pointer, exists, std::move(equals), std::move(notEquals));
  });
  registry.addStage("metadata-match", [](core::ConfigReader& config, const core::ConnectorContext&)
                                          -> Result<std::unique_ptr<core::Stage>> {
    std::string key = config.requiredString("key", "metadata key to test, e.g. kind");
    auto equals = config.strings("equals", "keep only these values");
    auto notEquals = config.strings("not_equals", "drop these values");
    if (equals.empty() && notEquals.empty()) config.invalid("equals", "equals or not_equals with at least one value");
    if (auto r = config.finish(); !r) return std::unexpected(r.error());
    return std::make_unique<MetadataMatch>(std::move(key), std::move(equals), std::move(notEquals));
  });
}

}  // namespace switchboard::runtime
