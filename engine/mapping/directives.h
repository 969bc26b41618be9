// $translate, $localInstant, $fromHl7Date and $toHl7Date, shared by the general evaluator
// (mapping.cc) and the planned one (mapping_plan.cc). `Run` provides `m` (the Mapping::Impl),
// `error(code, what, location)`, `scalarText(node)` (Result<optional<string or string_view>>: the
// node's single value as text) and `defaultZone()` (the same for the %timezone variable); `Vals` is
// a vector of rapidjson::Value whose strings are copied with `alloc`. Not part of the module's
// interface. Thread-safety: as the runs that call them (one thread per run).
#pragma once

#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "engine/core/time_zone.h"
#include "engine/mapping/hl7_input.h"
#include "engine/mapping/template.h"

namespace switchboard::mapping::detail {

// The translation a $translate node gives: none when its code is absent, or when an optional
// code has no translation; the error the directive reports otherwise.
template <typename Run>
Result<std::optional<ConceptMapSet::View>> translateLookup(Run& run, const TNode& node) {
  using Found = std::optional<ConceptMapSet::View>;
  auto code = run.scalarText(*node.code);
  if (!code) return std::unexpected(code.error());
  if (!*code) return Found();
  std::string system;
  if (node.system) {
    auto s = run.scalarText(*node.system);
    if (!s) return std::unexpected(s.error());
    if (*s) system = **s;
  }
  const std::string_view codeText = **code;
  auto t = run.m.maps->lookup(*node.map, node.mapName, codeText, system);
  if (!t) {
    if (!node.required && t.error().code == ErrorCode::kCodeInvalid) return Found();
    const std::string field = locationOf(node.code.get());
    return std::unexpected(run.error(t.error().code,
                                     field + " = " + quoteValue(codeText) +
                                         " has no translation in ConceptMap \"" + node.mapName +
                                         "\" (" + node.pointer + ")",
                                     field));
  }
  return Found(*t);
}

template <typename Run, typename Vals>
Result<void> translateDirective(Run& run, const TNode& node, Vals& vals,
                                rapidjson::Document::AllocatorType& alloc) {
  auto found = translateLookup(run, node);
  if (!found) return std::unexpected(found.error());
  if (!*found) return {};
  const ConceptMapSet::View* t = &**found;
  auto str = [&](std::string_view s) {
    return JsonValue(s.data(), static_cast<rapidjson::SizeType>(s.size()), alloc);
  };
  auto add = [&](std::string_view s) {
    if (!s.empty()) vals.push_back(str(s));
  };
  if (node.selectKind == TNode::Select::kSourceDisplay) {
    add(t->sourceDisplay);
    return {};
  }
  if (!t->matched) return {};
  if (node.selectKind == TNode::Select::kCode) {
    add(t->code);
  } else if (node.selectKind == TNode::Select::kSystem) {
    add(t->system);
  } else if (node.selectKind == TNode::Select::kDisplay) {
    add(t->display);
  } else {
    JsonValue coding(rapidjson::kObjectType);
    if (!t->system.empty()) coding.AddMember("system", str(t->system), alloc);
    coding.AddMember("code", str(t->code), alloc);
    if (!t->display.empty()) coding.AddMember("display", str(t->display), alloc);
    vals.push_back(std::move(coding));
  }
  return {};
}

template <typename Run, typename Vals>
Result<void> localInstantDirective(Run& run, const TNode& node, Vals& vals,
                                   rapidjson::Document::AllocatorType& alloc) {
  auto date = run.scalarText(*node.date);
  if (!date) return std::unexpected(date.error());
  auto time = run.scalarText(*node.time);
  if (!time) return std::unexpected(time.error());
  if (!*date || !*time) return {};
  // The zone's text stays where the run gave it (a view for the planned run): no copy.
  decltype(run.scalarText(*node.zone)) zoneText;
  decltype(run.defaultZone()) defaultText;
  std::string_view zoneName;
  if (node.zone) {
    zoneText = run.scalarText(*node.zone);
    if (!zoneText) return std::unexpected(zoneText.error());
    if (*zoneText) zoneName = **zoneText;
  } else {
    defaultText = run.defaultZone();
    if (!defaultText) return std::unexpected(defaultText.error());
    if (*defaultText) zoneName = **defaultText;
  }
  if (zoneName.empty()) {
    return std::unexpected(run.error(ErrorCode::kRequired,
                                     node.pointer +
                                         ": no time zone (set the variable \"timezone\" to an "
                                         "IANA zone such as America/New_York)",
                                     "%timezone"));
  }
  std::int64_t minutes = 0;
  if (node.addMinutes) {
    auto a = run.scalarText(*node.addMinutes);
    if (!a) return std::unexpected(a.error());
    if (*a) {
      const std::string digits(**a);
      char* end = nullptr;
      minutes = std::strtoll(digits.c_str(), &end, 10);
      if (!end || *end != 0) {
        return std::unexpected(run.error(
            ErrorCode::kValue, node.pointer + "/addMinutes: not an integer number of minutes",
            locationOf(node.addMinutes.get())));
      }
    }
  }
  auto zone = core::TimeZone::get(zoneName, run.m.zoneinfoRoot);
  if (!zone)
    return std::unexpected(run.error(zone.error().code, zone.error().message, "%timezone"));
  char text[core::kLocalInstantBytes];
  auto instant = core::writeLocalInstant(**zone, **date, **time, minutes, text);
  if (!instant) {
    const bool dateFault = instant.error().message.starts_with("date");
    const std::string field = locationOf(dateFault ? node.date.get() : node.time.get());
    return std::unexpected(
        run.error(ErrorCode::kValue,
                  field + ": " + instant.error().message + " (" + node.pointer + ")", field));
  }
  vals.emplace_back(text, static_cast<rapidjson::SizeType>(*instant), alloc);
  return {};
}

// $fromHl7Date (HL7 DTM to a FHIR date, dateTime or instant) and $toHl7Date (the reverse).
template <typename Run, typename Vals>
Result<void> hl7DateDirective(Run& run, const TNode& node, Vals& vals,
                              rapidjson::Document::AllocatorType& alloc) {
  auto value = run.scalarText(*node.date);
  if (!value) return std::unexpected(value.error());
  if (!*value) return {};
  const std::string_view text = **value;
  Result<std::string> converted;
  if (node.kind == TNode::Kind::kToHl7Date) {
    converted = fhirToHl7Date(text);
  } else {
    std::string zone;
    if (node.zone) {
      auto z = run.scalarText(*node.zone);
      if (!z) return std::unexpected(z.error());
      if (*z) zone = std::string(**z);
    } else {
      auto z = run.defaultZone();
      if (!z) return std::unexpected(z.error());
      if (*z) zone = std::string(**z);
    }
    const FhirTemporal as = node.select == "date"      ? FhirTemporal::kDate
                            : node.select == "instant" ? FhirTemporal::kInstant
                                                       : FhirTemporal::kDateTime;
    converted = hl7ToFhirDate(text, as, zone, run.m.zoneinfoRoot);
  }
  if (!converted) {
    const std::string field = locationOf(node.date.get());
    return std::unexpected(
        run.error(converted.error().code,
                  field + ": " + converted.error().message + " (" + node.pointer + ")", field));
  }
  vals.emplace_back(converted->c_str(), static_cast<rapidjson::SizeType>(converted->size()), alloc);
  return {};
}

}  // namespace switchboard::mapping::detail
