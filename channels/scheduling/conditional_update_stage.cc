#include "channels/scheduling/conditional_update_stage.h"

#include <algorithm>
#include <string_view>
#include <utility>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace switchboard::channels::scheduling {

ConditionalUpdateStage::ConditionalUpdateStage(std::vector<std::string> resourceTypes)
    : resourceTypes_(std::move(resourceTypes)) {}

core::StageResult ConditionalUpdateStage::process(core::PipelineMessage& message) const {
  rapidjson::Document doc;
  doc.Parse(message.payload.data(), message.payload.size());
  auto notABundle = [] {
    return core::StageResult::failure(Error(
        ErrorCode::kStructure, "conditional-update: the payload is not a transaction Bundle"));
  };
  if (doc.HasParseError() || !doc.IsObject()) return notABundle();
  auto type = doc.FindMember("resourceType");
  if (type == doc.MemberEnd() || !type->value.IsString() ||
      std::string_view(type->value.GetString()) != "Bundle") {
    return notABundle();
  }
  auto entries = doc.FindMember("entry");
  if (entries == doc.MemberEnd()) return core::StageResult::proceed();
  if (!entries->value.IsArray()) return notABundle();
  auto& alloc = doc.GetAllocator();
  int changed = 0;
  for (auto& entry : entries->value.GetArray()) {
    if (!entry.IsObject()) continue;
    auto resource = entry.FindMember("resource");
    auto request = entry.FindMember("request");
    if (resource == entry.MemberEnd() || request == entry.MemberEnd() ||
        !resource->value.IsObject() || !request->value.IsObject()) {
      continue;
    }
    auto rtype = resource->value.FindMember("resourceType");
    auto method = request->value.FindMember("method");
    auto search = request->value.FindMember("ifNoneExist");
    if (rtype == resource->value.MemberEnd() || !rtype->value.IsString() ||
        method == request->value.MemberEnd() || !method->value.IsString() ||
        std::string_view(method->value.GetString()) != "POST" ||
        search == request->value.MemberEnd() || !search->value.IsString()) {
      continue;
    }
    const std::string resourceType = rtype->value.GetString();
    if (std::find(resourceTypes_.begin(), resourceTypes_.end(), resourceType) ==
        resourceTypes_.end()) {
      continue;
    }
    const std::string url = resourceType + "?" + search->value.GetString();
    method->value.SetString("PUT", alloc);
    rapidjson::Value urlValue(url.c_str(), static_cast<rapidjson::SizeType>(url.size()), alloc);
    if (auto at = request->value.FindMember("url"); at != request->value.MemberEnd()) {
      at->value = urlValue;
    } else {
      request->value.AddMember("url", urlValue, alloc);
    }
    request->value.RemoveMember("ifNoneExist");
    ++changed;
  }
  rapidjson::StringBuffer out;
  rapidjson::Writer<rapidjson::StringBuffer> writer(out);
  doc.Accept(writer);
  message.payload.assign(out.GetString(), out.GetSize());
  message.events.emplace_back("conditional-update",
                              std::to_string(changed) + " entries made conditional updates");
  return core::StageResult::proceed();
}

Result<std::unique_ptr<core::Stage>> ConditionalUpdateStage::create(core::ConfigReader& config,
                                                                    const core::ConnectorContext&) {
  std::vector<std::string> types = config.strings(
      "resource_types", "resource types whose conditional creates become conditional updates");
  if (types.empty()) config.invalid("resource_types", "at least one resource type");
  if (auto r = config.finish(); !r) return std::unexpected(r.error());
  return std::make_unique<ConditionalUpdateStage>(std::move(types));
}

}  // namespace switchboard::channels::scheduling
