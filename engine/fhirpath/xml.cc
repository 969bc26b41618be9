// FHIR XML to the FHIR JSON model (libxml2): value attributes become JSON values typed by the
// model, repeating elements arrays, primitive id/extension "_name" objects, xhtml div a string,
// contained resources objects with resourceType. Thread-safety: no shared state.
#include <climits>
#include <cstdlib>
#include <map>
#include <mutex>
#include <vector>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "engine/fhirpath/internal.h"

namespace switchboard::fhirpath {

namespace {

constexpr const char* kFhirNs = "http://hl7.org/fhir";
constexpr const char* kXhtmlNs = "http://www.w3.org/1999/xhtml";

using Alloc = rapidjson::Document::AllocatorType;

std::string attr(xmlNode* n, const char* name) {
  xmlChar* v = xmlGetProp(n, reinterpret_cast<const xmlChar*>(name));
  if (!v) return {};
  std::string s = reinterpret_cast<const char*>(v);
  xmlFree(v);
  return s;
}

bool hasAttr(xmlNode* n, const char* name) {
  return xmlHasProp(n, reinterpret_cast<const xmlChar*>(name)) != nullptr;
}

std::string localName(xmlNode* n) { return reinterpret_cast<const char*>(n->name); }

bool inNs(xmlNode* n, const char* ns) {
  return n->ns && n->ns->href && std::string(reinterpret_cast<const char*>(n->ns->href)) == ns;
}

std::string serialize(xmlDoc* doc, xmlNode* n) {
  xmlBuffer* buf = xmlBufferCreate();
  xmlNodeDump(buf, doc, n, 0, 0);
  std::string s(reinterpret_cast<const char*>(xmlBufferContent(buf)),
                static_cast<std::size_t>(xmlBufferLength(buf)));
  xmlBufferFree(buf);
  return s;
}

std::vector<xmlNode*> elementChildren(xmlNode* n) {
  std::vector<xmlNode*> out;
  for (xmlNode* c = n->children; c; c = c->next)
    if (c->type == XML_ELEMENT_NODE) out.push_back(c);
  return out;
}

// Type of child `name` of `parentType`, resolving choice suffixes.
std::string childType(const std::string& parentType, const std::string& name) {
  if (auto info = elementInfo(parentType, name); info && !info->choice) return info->type;
  std::optional<std::string> guess;
  for (std::size_t cut = 1; cut < name.size(); ++cut) {
    if (!std::isupper(static_cast<unsigned char>(name[cut]))) continue;
    auto t = choiceSuffixType(std::string_view(name).substr(cut));
    if (!t) continue;
    auto info = elementInfo(parentType, name.substr(0, cut));
    if (info && info->choice) return *t;
    if (!guess) guess = t;
  }
  return guess.value_or("");
}

bool repeats(const std::string& parentType, const std::string& name) {
  auto info = elementInfo(parentType, name);
  return info && info->repeats;
}

rapidjson::Value primitiveValue(const std::string& text, const std::string& type, Alloc& alloc) {
  rapidjson::Value v;
  if (type == "boolean" && (text == "true" || text == "false")) {
    v.SetBool(text == "true");
    return v;
  }
  if (type == "integer" || type == "positiveInt" || type == "unsignedInt") {
    char* end = nullptr;
    long long n = std::strtoll(text.c_str(), &end, 10);
    if (end && *end == 0 && !text.empty()) {
      v.SetInt64(n);
      return v;
    }
  }
  if (type == "decimal") {
    if (auto d = Decimal::parse(text)) {
      if (auto i = decToInt64(*d); i && d->scale() == 0) {
        v.SetInt64(*i);
      } else {
        // Marked text; makeDocument() turns it into a double that remembers its digits.
        std::string marked = "\x01" + text;
        v.SetString(marked.c_str(), static_cast<rapidjson::SizeType>(marked.size()), alloc);
      }
      return v;
    }
  }
  v.SetString(text.c_str(), static_cast<rapidjson::SizeType>(text.size()), alloc);
  return v;
}

void convertElement(xmlDoc* doc, xmlNode* el, const std::string& type, rapidjson::Value& out,
                    rapidjson::Value* ext, Alloc& alloc);

// Converts a resource element (<Patient>...) into an object with resourceType.
void convertResource(xmlDoc* doc, xmlNode* el, rapidjson::Value& out, Alloc& alloc) {
  out.SetObject();
  std::string rt = localName(el);
  out.AddMember("resourceType", rapidjson::Value(rt.c_str(), alloc), alloc);
  convertElement(doc, el, rt, out, nullptr, alloc);
}

// Fills `out` (an object) with the children of `el`. For primitives, `ext` receives id/extension.
void convertElement(xmlDoc* doc, xmlNode* el, const std::string& type, rapidjson::Value& out,
                    rapidjson::Value* ext, Alloc& alloc) {
  if (!out.IsObject()) out.SetObject();
  if (hasAttr(el, "id") && !ext) {
    std::string id = attr(el, "id");
    out.AddMember("id", rapidjson::Value(id.c_str(), alloc), alloc);
  }
  if (hasAttr(el, "url") && localName(el) == "extension") {
    // Extension.url is an attribute in XML.
  }
  // Group children by name, in order of first appearance.
  std::vector<std::string> order;
  std::map<std::string, std::vector<xmlNode*>> groups;
  for (xmlNode* c : elementChildren(el)) {
    std::string name = localName(c);
    if (!groups.contains(name)) order.push_back(name);
    groups[name].push_back(c);
  }
  rapidjson::Value* target = &out;
  for (const std::string& name : order) {
    auto& items = groups[name];
    std::string ctype = childType(type, name);
    bool asArray = items.size() > 1 || repeats(type, name);
    bool anyPrimitive = false, anyExt = false;
    for (xmlNode* c : items) {
      if (hasAttr(c, "value")) anyPrimitive = true;
      if (hasAttr(c, "value") || isPrimitiveType(ctype)) {
        if (hasAttr(c, "id") || !elementChildren(c).empty()) anyExt = true;
      }
    }
    bool primitive = anyPrimitive || isPrimitiveType(ctype);
    rapidjson::Value values(rapidjson::kArrayType), exts(rapidjson::kArrayType);
    for (xmlNode* c : items) {
      rapidjson::Value v, e;
      if (name == "div" && inNs(c, kXhtmlNs)) {
        std::string s = serialize(doc, c);
        v.SetString(s.c_str(), static_cast<rapidjson::SizeType>(s.size()), alloc);
      } else if (primitive) {
        if (hasAttr(c, "value")) v = primitiveValue(attr(c, "value"), ctype, alloc);
        if (hasAttr(c, "id") || !elementChildren(c).empty()) {
          e.SetObject();
          if (hasAttr(c, "id")) {
            std::string id = attr(c, "id");
            e.AddMember("id", rapidjson::Value(id.c_str(), alloc), alloc);
          }
          convertElement(doc, c, ctype.empty() ? "Element" : ctype, e, &e, alloc);
        }
      } else {
        auto kids = elementChildren(c);
        bool resourceHolder =
            ctype == "Resource" || (kids.size() == 1 && isResourceType(localName(kids[0])) &&
                                    inNs(kids[0], kFhirNs) && ctype.empty());
        if (resourceHolder && kids.size() == 1) {
          convertResource(doc, kids[0], v, alloc);
        } else {
          v.SetObject();
          if (name == "extension" || name == "modifierExtension") {
            std::string url = attr(c, "url");
            v.AddMember("url", rapidjson::Value(url.c_str(), alloc), alloc);
          }
          convertElement(doc, c, ctype, v, nullptr, alloc);
        }
      }
      values.PushBack(v, alloc);
      exts.PushBack(e, alloc);
    }
    std::string extName = "_" + name;
    if (asArray) {
      bool anyValue = false;
      for (auto& v : values.GetArray())
        if (!v.IsNull()) anyValue = true;
      if (anyValue) target->AddMember(rapidjson::Value(name.c_str(), alloc), values, alloc);
      if (anyExt) target->AddMember(rapidjson::Value(extName.c_str(), alloc), exts, alloc);
    } else {
      if (!values[0].IsNull())
        target->AddMember(rapidjson::Value(name.c_str(), alloc), values[0], alloc);
      if (anyExt && !exts[0].IsNull())
        target->AddMember(rapidjson::Value(extName.c_str(), alloc), exts[0], alloc);
    }
  }
}

}  // namespace

Result<DocumentPtr> xmlToJson(std::string_view text) {
  // libxml2 must be initialised once before threads parse concurrently.
  static std::once_flag initOnce;
  std::call_once(initOnce, [] { xmlInitParser(); });
  if (text.size() > static_cast<std::size_t>(INT_MAX))
    return fail(ErrorCode::kTooLong, "XML resource too large");
  xmlDoc* doc = xmlReadMemory(text.data(), static_cast<int>(text.size()), "resource.xml", nullptr,
                              XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  if (!doc) {
    const xmlError* err = xmlGetLastError();
    std::string msg = err && err->message ? err->message : "malformed XML";
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    std::string loc = err ? "line " + std::to_string(err->line) : "";
    return fail(ErrorCode::kStructure, "invalid XML: " + msg, loc);
  }
  xmlNode* root = xmlDocGetRootElement(doc);
  if (!root || !inNs(root, kFhirNs)) {
    xmlFreeDoc(doc);
    return fail(ErrorCode::kStructure,
                "not a FHIR XML resource (root must be in namespace " + std::string(kFhirNs) + ")");
  }
  auto out = std::make_unique<rapidjson::Document>();
  convertResource(doc, root, *out, out->GetAllocator());
  xmlFreeDoc(doc);
  return makeDocument(std::move(out), nullptr);
}

}  // namespace switchboard::fhirpath
