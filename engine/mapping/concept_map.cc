// ConceptMap loading and translation. Thread-safety: see concept_map.h.
#include "engine/mapping/concept_map.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <rapidjson/error/en.h>

namespace switchboard::mapping {
namespace {

std::string str(const rapidjson::Value& obj, const char* key) {
  if (!obj.IsObject()) return {};
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd() || !it->value.IsString()) return {};
  return std::string(it->value.GetString(), it->value.GetStringLength());
}

const rapidjson::Value* arr(const rapidjson::Value& obj, const char* key) {
  if (!obj.IsObject()) return nullptr;
  auto it = obj.FindMember(key);
  return it != obj.MemberEnd() && it->value.IsArray() ? &it->value : nullptr;
}

}  // namespace

Result<std::shared_ptr<const ConceptMapSet>> ConceptMapSet::loadDirectory(const std::string& dir) {
  auto set = std::make_shared<ConceptMapSet>();
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return std::shared_ptr<const ConceptMapSet>(set);
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().extension() == ".json") files.push_back(entry.path());
  }
  if (ec) return fail(ErrorCode::kStructure, "cannot list " + dir + ": " + ec.message());
  std::sort(files.begin(), files.end());
  for (const auto& path : files) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    if (!in) return fail(ErrorCode::kStructure, "cannot read " + path.string());
    rapidjson::Document doc;
    doc.Parse(text.str().c_str(), text.str().size());
    if (doc.HasParseError()) {
      return fail(ErrorCode::kStructure, path.string() + ": invalid JSON at offset " +
                                             std::to_string(doc.GetErrorOffset()) + ": " +
                                             rapidjson::GetParseError_En(doc.GetParseError()));
    }
    if (auto r = set->add(doc, path.string()); !r) return std::unexpected(r.error());
  }
  return std::shared_ptr<const ConceptMapSet>(set);
}

Result<void> ConceptMapSet::add(const rapidjson::Value& cm, const std::string& file) {
  auto bad = [&](const std::string& pointer, const std::string& what) {
    return fail(ErrorCode::kStructure, file + ": " + pointer + ": " + what, pointer);
  };
  if (!cm.IsObject() || str(cm, "resourceType") != "ConceptMap")
    return bad("/resourceType", "expected \"ConceptMap\"");
  auto map = std::make_shared<Map>();
  map->id = str(cm, "id");
  const std::string name = str(cm, "name"), url = str(cm, "url");
  if (map->id.empty() && name.empty() && url.empty())
    return bad("/id", "a ConceptMap needs an id, name or url");
  const rapidjson::Value* groups = arr(cm, "group");
  if (!groups) return bad("/group", "expected an array of groups");
  for (rapidjson::SizeType g = 0; g < groups->Size(); ++g) {
    const auto& gv = (*groups)[g];
    const std::string gp = "/group/" + std::to_string(g);
    Group group;
    group.source = str(gv, "source");
    group.target = str(gv, "target");
    const rapidjson::Value* elements = arr(gv, "element");
    if (!elements) return bad(gp + "/element", "expected an array");
    for (rapidjson::SizeType e = 0; e < elements->Size(); ++e) {
      const auto& ev = (*elements)[e];
      const std::string ep = gp + "/element/" + std::to_string(e);
      const std::string code = str(ev, "code");
      if (code.empty()) return bad(ep + "/code", "expected a code");
      Translation t;
      t.sourceDisplay = str(ev, "display");
      if (const rapidjson::Value* targets = arr(ev, "target")) {
        for (rapidjson::SizeType k = 0; k < targets->Size(); ++k) {
          const auto& tv = (*targets)[k];
          const std::string eq = str(tv, "equivalence");
          if (eq.empty())
            return bad(ep + "/target/" + std::to_string(k) + "/equivalence", "required in R4");
          if (eq == "unmatched" || eq == "disjoint") continue;
          if (str(tv, "code").empty())
            return bad(ep + "/target/" + std::to_string(k) + "/code", "expected a code");
          t.matched = true;
          t.system = group.target;
          t.code = str(tv, "code");
          t.display = str(tv, "display");
          break;
        }
      }
      if (!group.elements.emplace(code, std::move(t)).second)
        return bad(ep + "/code", "code \"" + code + "\" appears twice in the group");
    }
    if (gv.IsObject() && gv.HasMember("unmapped")) {
      const auto& uv = gv["unmapped"];
      group.unmappedMode = str(uv, "mode");
      if (group.unmappedMode == "fixed") {
        group.unmappedFixed.matched = true;
        group.unmappedFixed.system = group.target;
        group.unmappedFixed.code = str(uv, "code");
        group.unmappedFixed.display = str(uv, "display");
        if (group.unmappedFixed.code.empty())
          return bad(gp + "/unmapped/code", "required for mode fixed");
      } else if (group.unmappedMode != "provided") {
        return bad(gp + "/unmapped/mode",
                   "expected \"provided\" or \"fixed\" (other-map is not supported)");
      }
    }
    group.index.build(group.elements);
    map->groups.push_back(std::move(group));
  }
  for (const std::string& key : {map->id, name, url}) {
    if (key.empty()) continue;
    if (byName_.count(key))
      return bad("/id", "another ConceptMap is already called \"" + key + "\"");
  }
  for (const std::string& key : {map->id, name, url}) {
    if (!key.empty()) byName_.emplace(key, map);
  }
  maps_.push_back(std::move(map));
  return {};
}

std::uint64_t ConceptMapSet::CodeIndex::hash(std::string_view code) {
  constexpr std::uint64_t kMul = 0xff51afd7ed558ccdULL;
  std::uint64_t h = 0x9e3779b97f4a7c15ULL ^ code.size();
  std::size_t i = 0;
  for (; i + 8 <= code.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, code.data() + i, 8);
    h = (h ^ w) * kMul;
    h ^= h >> 32;
  }
  if (i < code.size()) {
    std::uint64_t w = 0;
    std::memcpy(&w, code.data() + i, code.size() - i);
    h = (h ^ w) * kMul;
    h ^= h >> 32;
  }
  return h;
}

void ConceptMapSet::CodeIndex::build(const TextMap<Translation>& elements) {
  std::size_t size = 8;
  while (size < 2 * elements.size()) size *= 2;
  entries_.assign(size, Entry{});
  mask_ = size - 1;
  for (const auto& [code, translation] : elements) {  // node addresses: stable once added
    std::uint64_t at = hash(code) & mask_;
    while (entries_[at].translation) at = (at + 1) & mask_;
    entries_[at] = Entry{std::string_view(code), &translation};
  }
}

const Translation* ConceptMapSet::CodeIndex::find(std::string_view code) const {
  if (entries_.empty()) return nullptr;
  for (std::uint64_t at = hash(code) & mask_;; at = (at + 1) & mask_) {
    const Entry& e = entries_[at];
    if (!e.translation) return nullptr;
    if (e.code.size() == code.size() &&
        (code.empty() || std::memcmp(e.code.data(), code.data(), code.size()) == 0))
      return e.translation;
  }
}

bool ConceptMapSet::has(std::string_view map) const { return byName_.find(map) != byName_.end(); }

Result<Translation> ConceptMapSet::translate(std::string_view mapName, std::string_view code,
                                             std::string_view sourceSystem) const {
  auto v = lookup(mapName, code, sourceSystem);
  if (!v) return std::unexpected(v.error());
  Translation t;
  t.sourceDisplay = v->sourceDisplay;
  t.matched = v->matched;
  t.system = v->system;
  t.code = v->code;
  t.display = v->display;
  return t;
}

namespace {

ConceptMapSet::View viewOf(const Translation& t) {
  return {t.sourceDisplay, t.matched, t.system, t.code, t.display};
}

}  // namespace

Result<ConceptMapSet::View> ConceptMapSet::lookup(std::string_view mapName, std::string_view code,
                                                  std::string_view sourceSystem) const {
  const Map* map = find(mapName);
  if (!map) return fail(ErrorCode::kNotFound, "no ConceptMap \"" + std::string(mapName) + "\"");
  return lookup(*map, mapName, code, sourceSystem);
}

const ConceptMapSet::Map* ConceptMapSet::find(std::string_view mapName) const {
  auto it = byName_.find(mapName);
  return it == byName_.end() ? nullptr : it->second.get();
}

Result<ConceptMapSet::View> ConceptMapSet::lookup(const Map& map, std::string_view mapName,
                                                  std::string_view code,
                                                  std::string_view sourceSystem) const {
  for (const Group& group : map.groups) {
    if (!sourceSystem.empty() && !group.source.empty() && group.source != sourceSystem) continue;
    if (const Translation* e = group.index.find(code)) return viewOf(*e);
  }
  for (const Group& group : map.groups) {
    if (!sourceSystem.empty() && !group.source.empty() && group.source != sourceSystem) continue;
    if (group.unmappedMode == "fixed") return viewOf(group.unmappedFixed);
    if (group.unmappedMode == "provided") {
      View t;
      t.matched = true;
      t.system = group.target;
      t.code = code;
      return t;
    }
  }
  return fail(ErrorCode::kCodeInvalid,
              "code not in ConceptMap \"" + std::string(mapName) + "\" and no unmapped rule");
}

}  // namespace switchboard::mapping
