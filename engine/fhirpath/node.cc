// Collection items over FHIR JSON: typed navigation (choice types, primitive extensions,
// contained resources), System-value conversion, JSON output and resource parsing.
// Thread-safety: nodes are immutable values sharing read-only documents.
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include <rapidjson/encodedstream.h>
#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "engine/fhirpath/internal.h"

namespace switchboard::fhirpath {

Node Node::resource(DocumentPtr doc) {
  const rapidjson::Value* v = doc.get();
  return resource(std::move(doc), v);
}

Node Node::resource(DocumentPtr doc, const rapidjson::Value* value) {
  std::string type;
  if (value && value->IsObject()) {
    auto it = value->FindMember("resourceType");
    if (it != value->MemberEnd() && it->value.IsString()) type = it->value.GetString();
  }
  return element(std::move(doc), value, nullptr, type, type);
}

Node Node::element(DocumentPtr doc, const rapidjson::Value* value,
                   const rapidjson::Value* primitiveExtension, std::string fhirType,
                   std::string name) {
  Node n;
  n.kind_ = Kind::kElement;
  n.doc_ = std::move(doc);
  n.json_ = value;
  n.ext_ = primitiveExtension;
  n.type_ = std::move(fhirType);
  n.name_ = std::move(name);
  return n;
}

Node Node::boolean(bool v) {
  Node n;
  n.kind_ = Kind::kBoolean;
  n.type_ = "Boolean";
  n.bool_ = v;
  return n;
}
Node Node::integer(std::int64_t v) {
  Node n;
  n.kind_ = Kind::kInteger;
  n.type_ = "Integer";
  n.int_ = v;
  return n;
}
Node Node::decimal(Decimal v) {
  Node n;
  n.kind_ = Kind::kDecimal;
  n.type_ = "Decimal";
  n.dec_ = v;
  return n;
}
Node Node::string(std::string v) {
  Node n;
  n.kind_ = Kind::kString;
  n.type_ = "String";
  n.str_ = std::move(v);
  return n;
}
Node Node::temporal(Temporal v) {
  Node n;
  n.kind_ = Kind::kTemporal;
  n.type_ = v.kind == TemporalKind::kDate       ? "Date"
            : v.kind == TemporalKind::kDateTime ? "DateTime"
                                                : "Time";
  n.temporal_ = v;
  return n;
}
Node Node::quantity(Quantity v) {
  Node n;
  n.kind_ = Kind::kQuantity;
  n.type_ = "Quantity";
  n.quantity_ = std::move(v);
  return n;
}

namespace {

std::optional<Node> numberNode(const DocumentPtr& doc, const rapidjson::Value& v,
                               bool wantDecimal) {
  if (!wantDecimal && v.IsInt64()) return Node::integer(v.GetInt64());
  if (v.IsNumber()) return Node::decimal(jsonNumberDecimal(doc, v));
  return std::nullopt;
}

}  // namespace

std::optional<Node> Node::toSystemValue() const {
  if (kind_ != Kind::kElement) return *this;
  if (!json_) return std::nullopt;
  const rapidjson::Value& v = *json_;
  auto sys = systemTypeOf(type_);
  if (sys && *sys == "Quantity") {
    if (!v.IsObject()) return std::nullopt;
    auto val = v.FindMember("value");
    if (val == v.MemberEnd() || !val->value.IsNumber()) return std::nullopt;
    Quantity q;
    q.value = jsonNumberDecimal(doc_, val->value);
    auto code = v.FindMember("code");
    auto unit = v.FindMember("unit");
    if (code != v.MemberEnd() && code->value.IsString())
      q.unit = code->value.GetString();
    else if (unit != v.MemberEnd() && unit->value.IsString())
      q.unit = unit->value.GetString();
    return Node::quantity(q);
  }
  if (v.IsObject() || v.IsArray() || v.IsNull()) return std::nullopt;
  if (v.IsBool()) return Node::boolean(v.GetBool());
  if (v.IsNumber()) return numberNode(doc_, v, sys && *sys == "Decimal");
  std::string s = v.GetString();
  if (sys) {
    if (*sys == "Date" || *sys == "DateTime" || *sys == "Time") {
      TemporalKind k = *sys == "Date"       ? TemporalKind::kDate
                       : *sys == "DateTime" ? TemporalKind::kDateTime
                                            : TemporalKind::kTime;
      if (auto t = Temporal::parse(s, k)) return Node::temporal(*t);
      if (k == TemporalKind::kDateTime) {
        if (auto t = Temporal::parse(s, TemporalKind::kDate)) {
          t->kind = TemporalKind::kDateTime;
          return Node::temporal(*t);
        }
      }
      return Node::string(s);
    }
    if (*sys == "Integer") {
      char* end = nullptr;
      long long n = std::strtoll(s.c_str(), &end, 10);
      if (end && *end == 0 && !s.empty()) return Node::integer(n);
    }
    if (*sys == "Decimal") {
      if (auto d = Decimal::parse(s)) return Node::decimal(*d);
    }
    if (*sys == "Boolean") {
      if (s == "true") return Node::boolean(true);
      if (s == "false") return Node::boolean(false);
    }
  }
  return Node::string(s);
}

// ---------------------------------------------------------------- navigation

Error jsonParseError(const rapidjson::ParseResult& result) {
  return Error(ErrorCode::kStructure, "invalid JSON at offset " + std::to_string(result.Offset()) + ": " +
                                          rapidjson::GetParseError_En(result.Code()));
}

std::string jsonTypeName(const rapidjson::Value& v) {
  if (v.IsBool()) return "boolean";
  if (v.IsInt64()) return "integer";
  if (v.IsNumber()) return "decimal";
  if (v.IsString()) return "string";
  if (v.IsObject()) {
    auto rt = v.FindMember("resourceType");
    if (rt != v.MemberEnd() && rt->value.IsString()) return rt->value.GetString();
  }
  return "";
}

namespace {

const rapidjson::Value* findMember(const rapidjson::Value* obj, std::string_view key) {
  if (!obj || !obj->IsObject()) return nullptr;
  auto it = obj->FindMember(rapidjson::StringRef(key.data(), key.size()));
  return it == obj->MemberEnd() ? nullptr : &it->value;
}

std::string guessType(const rapidjson::Value& v) { return jsonTypeName(v); }

std::string resourceTypeOf(const rapidjson::Value* v) {
  if (v && v->IsObject()) {
    auto rt = v->FindMember("resourceType");
    if (rt != v->MemberEnd() && rt->value.IsString()) return rt->value.GetString();
  }
  return "";
}

// Appends the nodes of property `key` (value and/or "_key" extension) named `name`.
void appendProperty(const Node& parent, const rapidjson::Value* value, const rapidjson::Value* ext,
                    const std::string& type, const std::string& name, Collection& out) {
  auto typeFor = [&](const rapidjson::Value* item) {
    if (type == "Resource" || (type.empty() && item)) {
      std::string rt = resourceTypeOf(item);
      if (!rt.empty()) return rt;
    }
    if (type.empty() && item) return guessType(*item);
    return type;
  };
  if (value && value->IsArray()) {
    for (rapidjson::SizeType i = 0; i < value->Size(); ++i) {
      const rapidjson::Value* item = &(*value)[i];
      const rapidjson::Value* e = nullptr;
      if (ext && ext->IsArray() && i < ext->Size() && (*ext)[i].IsObject()) e = &(*ext)[i];
      if (item->IsNull() && !e) continue;
      out.push_back(Node::element(parent.document(), item->IsNull() ? nullptr : item, e,
                                  typeFor(item), name));
    }
    // Extensions beyond the values array (values missing entirely).
    return;
  }
  if (!value && ext && ext->IsArray()) {
    for (rapidjson::SizeType i = 0; i < ext->Size(); ++i) {
      if (!(*ext)[i].IsObject()) continue;
      out.push_back(Node::element(parent.document(), nullptr, &(*ext)[i], type, name));
    }
    return;
  }
  if (value && value->IsNull() && !ext) return;
  out.push_back(Node::element(parent.document(), value && !value->IsNull() ? value : nullptr,
                              ext && ext->IsObject() ? ext : nullptr, typeFor(value), name));
}

bool startsUpper(std::string_view s) {
  return !s.empty() && std::isupper(static_cast<unsigned char>(s[0]));
}

}  // namespace

Collection childNamed(const Node& node, std::string_view name) {
  Collection out;
  if (!node.isElement()) return out;
  const rapidjson::Value* obj = node.json();
  // Children of a primitive are in its "_x" object (id, extension).
  if (!obj || !obj->IsObject()) {
    const rapidjson::Value* ext = node.primitiveExtension();
    if (!ext) return out;
    const rapidjson::Value* v = findMember(ext, name);
    if (!v) return out;
    std::string type = name == "extension" ? "Extension" : name == "id" ? "string" : "";
    appendProperty(node, v, nullptr, type, std::string(name), out);
    return out;
  }
  if (name == "resourceType") return out;
  auto info = elementInfo(node.typeName(), name);
  const rapidjson::Value* direct = findMember(obj, name);
  std::string underscore = "_" + std::string(name);
  const rapidjson::Value* ext = findMember(obj, underscore);
  if (direct || ext) {
    if (info && info->choice) return out;  // value[x] is never spelled "value"
    std::string type = info ? info->type : "";
    appendProperty(node, direct, ext, type, std::string(name), out);
    return out;
  }
  if (info && !info->choice) return out;
  if (!info && typeIsComplete(node.typeName())) return out;
  // Choice element: name + TypeSuffix.
  for (auto it = obj->MemberBegin(); it != obj->MemberEnd(); ++it) {
    std::string_view key(it->name.GetString(), it->name.GetStringLength());
    if (key.size() <= name.size() || !key.starts_with(name)) continue;
    std::string_view suffix = key.substr(name.size());
    if (!startsUpper(suffix)) continue;
    auto type = choiceSuffixType(suffix);
    if (!type) continue;
    const rapidjson::Value* e = findMember(obj, "_" + std::string(key));
    appendProperty(node, &it->value, e, *type, std::string(name), out);
  }
  // A primitive choice with only its extension ("_valueString").
  if (out.empty()) {
    for (auto it = obj->MemberBegin(); it != obj->MemberEnd(); ++it) {
      std::string_view key(it->name.GetString(), it->name.GetStringLength());
      if (!key.starts_with("_") || key.size() <= name.size() + 1) continue;
      std::string_view k = key.substr(1);
      if (!k.starts_with(name)) continue;
      auto type = choiceSuffixType(k.substr(name.size()));
      if (!type || findMember(obj, k)) continue;
      appendProperty(node, nullptr, &it->value, *type, std::string(name), out);
    }
  }
  return out;
}

Collection childrenOf(const Node& node) {
  Collection out;
  if (!node.isElement()) return out;
  const rapidjson::Value* obj = node.json();
  if (!obj || !obj->IsObject()) {
    const rapidjson::Value* ext = node.primitiveExtension();
    if (!ext || !ext->IsObject()) return out;
    for (auto it = ext->MemberBegin(); it != ext->MemberEnd(); ++it) {
      std::string key = it->name.GetString();
      appendProperty(node, &it->value, nullptr, key == "extension" ? "Extension" : "string", key,
                     out);
    }
    return out;
  }
  for (auto it = obj->MemberBegin(); it != obj->MemberEnd(); ++it) {
    std::string key(it->name.GetString(), it->name.GetStringLength());
    if (key == "resourceType") continue;
    if (key.starts_with("_")) {
      if (findMember(obj, key.substr(1))) continue;  // merged with its value
      std::string k = key.substr(1);
      auto info = elementInfo(node.typeName(), k);
      appendProperty(node, nullptr, &it->value, info ? info->type : "", k, out);
      continue;
    }
    const rapidjson::Value* ext = findMember(obj, "_" + key);
    auto info = elementInfo(node.typeName(), key);
    std::string name = key, type = info ? info->type : "";
    if (!info) {
      // choice element?
      for (std::size_t cut = 1; cut < key.size(); ++cut) {
        if (!std::isupper(static_cast<unsigned char>(key[cut]))) continue;
        auto t = choiceSuffixType(std::string_view(key).substr(cut));
        auto pi = elementInfo(node.typeName(), key.substr(0, cut));
        if (t && pi && pi->choice) {
          name = key.substr(0, cut);
          type = *t;
          break;
        }
      }
    }
    appendProperty(node, &it->value, ext, type, name, out);
  }
  return out;
}

// ---------------------------------------------------------------- types

std::string qualifiedTypeOf(const Node& node) {
  if (node.isSystemValue()) return "System." + node.typeName();
  return "FHIR." + node.typeName();
}

bool nodeIsType(const Node& node, std::string_view typeName) {
  std::string_view ns, name = typeName;
  if (auto dot = typeName.find('.');
      dot != std::string_view::npos &&
      (typeName.starts_with("FHIR.") || typeName.starts_with("System."))) {
    ns = typeName.substr(0, dot);
    name = typeName.substr(dot + 1);
  }
  if (node.isSystemValue()) {
    if (ns == "FHIR") return false;
    return node.typeName() == name;
  }
  if (ns == "System") return false;
  std::string t = node.typeName();
  for (int guard = 0; guard < 8 && !t.empty(); ++guard) {
    if (t == name) return true;
    t = baseType(t);
  }
  return false;
}

// ---------------------------------------------------------------- JSON output

std::optional<std::string> toFhirPathString(const Node& node) {
  auto v = node.toSystemValue();
  if (!v) return std::nullopt;
  switch (v->kind()) {
    case Node::Kind::kBoolean:
      return v->booleanValue() ? "true" : "false";
    case Node::Kind::kInteger:
      return std::to_string(v->integerValue());
    case Node::Kind::kDecimal:
      return v->decimalValue().toString();
    case Node::Kind::kString:
      return v->stringValue();
    case Node::Kind::kTemporal:
      return v->temporalValue().toString();
    case Node::Kind::kQuantity: {
      const Quantity& q = v->quantityValue();
      std::string unit = q.unit.empty() ? "1" : q.unit;
      if (calendarUnit(unit)) return q.value.toString() + " " + unit;
      return q.value.toString() + " '" + unit + "'";
    }
    default:
      return std::nullopt;
  }
}

void toJson(const Node& node, rapidjson::Value& out, rapidjson::Document::AllocatorType& alloc) {
  if (node.isElement()) {
    // A primitive that carries only an id or extensions has no value: null.
    if (node.json())
      out.CopyFrom(*node.json(), alloc);
    else
      out.SetNull();
    return;
  }
  switch (node.kind()) {
    case Node::Kind::kBoolean:
      out.SetBool(node.booleanValue());
      return;
    case Node::Kind::kInteger:
      out.SetInt64(node.integerValue());
      return;
    case Node::Kind::kDecimal: {
      const Decimal& d = node.decimalValue();
      if (auto i = decToInt64(d); i && d.scale() == 0)
        out.SetInt64(*i);
      else
        out.SetDouble(d.toDouble());
      return;
    }
    case Node::Kind::kString:
      out.SetString(node.stringValue().c_str(),
                    static_cast<rapidjson::SizeType>(node.stringValue().size()), alloc);
      return;
    case Node::Kind::kTemporal: {
      std::string s = node.temporalValue().toString();
      out.SetString(s.c_str(), static_cast<rapidjson::SizeType>(s.size()), alloc);
      return;
    }
    case Node::Kind::kQuantity: {
      const Quantity& q = node.quantityValue();
      out.SetObject();
      rapidjson::Value num;
      if (auto i = decToInt64(q.value); i && q.value.scale() == 0)
        num.SetInt64(*i);
      else
        num.SetDouble(q.value.toDouble());
      out.AddMember("value", num, alloc);
      std::string unit = q.unit, code = q.unit, system = "http://unitsofmeasure.org";
      if (auto cal = calendarUnit(q.unit)) {
        // Calendar durations map onto their UCUM codes (the FHIR Duration convention).
        static const std::pair<const char*, const char*> kCodes[] = {
            {"year", "a"}, {"month", "mo"},   {"week", "wk"},  {"day", "d"},
            {"hour", "h"}, {"minute", "min"}, {"second", "s"}, {"millisecond", "ms"}};
        for (auto& [w, c] : kCodes)
          if (*cal == w) code = c;
      }
      if (unit.empty()) unit = code = "1";
      out.AddMember("unit", rapidjson::Value(unit.c_str(), alloc), alloc);
      out.AddMember("system", rapidjson::Value(system.c_str(), alloc), alloc);
      out.AddMember("code", rapidjson::Value(code.c_str(), alloc), alloc);
      return;
    }
    default:
      out.SetNull();
  }
}

void toJson(const Collection& items, rapidjson::Value& out,
            rapidjson::Document::AllocatorType& alloc) {
  out.SetArray();
  for (const Node& n : items) {
    rapidjson::Value v;
    toJson(n, v, alloc);
    out.PushBack(v, alloc);
  }
}

namespace {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

// Writes a JSON value of a document, numbers with their source digits where known.
void writeExact(JsonWriter& w, const rapidjson::Value& v, const DocumentPtr& doc) {
  if (v.IsObject()) {
    w.StartObject();
    for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it) {
      w.Key(it->name.GetString(), it->name.GetStringLength());
      writeExact(w, it->value, doc);
    }
    w.EndObject();
  } else if (v.IsArray()) {
    w.StartArray();
    for (const auto& item : v.GetArray()) writeExact(w, item, doc);
    w.EndArray();
  } else if (const std::string* text = v.IsDouble() ? exactNumberText(doc, &v) : nullptr;
             text && Decimal::parse(*text)) {
    w.RawValue(text->c_str(), text->size(), rapidjson::kNumberType);
  } else {
    v.Accept(w);
  }
}

}  // namespace

std::string toJsonString(const Collection& items) {
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.StartArray();
  for (const Node& n : items) {
    if (n.isElement() && n.json()) {
      writeExact(w, *n.json(), n.document());
    } else if (n.kind() == Node::Kind::kDecimal) {
      std::string text = n.decimalValue().toString();
      w.RawValue(text.c_str(), text.size(), rapidjson::kNumberType);
    } else if (n.kind() == Node::Kind::kQuantity) {
      rapidjson::Document doc;
      toJson(n, doc, doc.GetAllocator());
      w.StartObject();
      for (auto it = doc.MemberBegin(); it != doc.MemberEnd(); ++it) {
        w.Key(it->name.GetString(), it->name.GetStringLength());
        if (std::string_view(it->name.GetString()) == "value") {
          std::string text = n.quantityValue().value.toString();
          w.RawValue(text.c_str(), text.size(), rapidjson::kNumberType);
        } else {
          it->value.Accept(w);
        }
      }
      w.EndObject();
    } else {
      rapidjson::Document doc;
      toJson(n, doc, doc.GetAllocator());
      doc.Accept(w);
    }
  }
  w.EndArray();
  return std::string(buf.GetString(), buf.GetSize());
}

// ---------------------------------------------------------------- parsing resources

namespace {

struct DecimalTexts {
  std::unordered_map<const rapidjson::Value*, std::string> texts;
};

// The shared_ptr deleter carries the texts, so any DocumentPtr can be asked for them
// (std::get_deleter) without knowing how it was made.
struct DocumentDeleter {
  std::shared_ptr<const DecimalTexts> texts;
  void operator()(const rapidjson::Document* d) const { delete d; }
};

// Forwards SAX events to a Document, turning raw numbers into Int64 or Double and keeping the
// text of every Double in document order.
struct ExactNumberHandler {
  rapidjson::Document& d;
  std::vector<std::string>& texts;
  bool Null() { return d.Null(); }
  bool Bool(bool b) { return d.Bool(b); }
  bool Int(int i) { return d.Int(i); }
  bool Uint(unsigned u) { return d.Uint(u); }
  bool Int64(std::int64_t i) { return d.Int64(i); }
  bool Uint64(std::uint64_t u) { return d.Uint64(u); }
  bool Double(double x) {
    texts.push_back(Decimal::fromDouble(x).toString());
    return d.Double(x);
  }
  bool RawNumber(const char* s, rapidjson::SizeType len, bool) {
    std::string text(s, len);
    if (text.find_first_of(".eE") == std::string::npos) {
      errno = 0;
      char* end = nullptr;
      long long v = std::strtoll(text.c_str(), &end, 10);
      if (errno == 0 && end && *end == 0) return d.Int64(v);
      errno = 0;
      unsigned long long u = std::strtoull(text.c_str(), &end, 10);
      if (errno == 0 && end && *end == 0 && text[0] != '-') return d.Uint64(u);
    }
    texts.push_back(text);
    return d.Double(std::strtod(text.c_str(), nullptr));
  }
  bool String(const char* s, rapidjson::SizeType len, bool copy) { return d.String(s, len, copy); }
  bool StartObject() { return d.StartObject(); }
  bool Key(const char* s, rapidjson::SizeType len, bool copy) { return d.Key(s, len, copy); }
  bool EndObject(rapidjson::SizeType n) { return d.EndObject(n); }
  bool StartArray() { return d.StartArray(); }
  bool EndArray(rapidjson::SizeType n) { return d.EndArray(n); }
};

}  // namespace

DocumentPtr makeDocument(std::unique_ptr<rapidjson::Document> doc,
                         const std::vector<std::string>* jsonTexts) {
  auto table = std::make_shared<DecimalTexts>();
  std::size_t next = 0;
  // Depth-first in document order: the order in which the reader produced the numbers.
  std::vector<rapidjson::Value*> stack{doc.get()};
  while (!stack.empty()) {
    rapidjson::Value* v = stack.back();
    stack.pop_back();
    if (v->IsObject()) {
      for (auto it = v->MemberEnd(); it != v->MemberBegin();) {
        --it;
        stack.push_back(&it->value);
      }
    } else if (v->IsArray()) {
      for (rapidjson::SizeType i = v->Size(); i > 0; --i) stack.push_back(&(*v)[i - 1]);
    } else if (jsonTexts && v->IsDouble()) {
      if (next < jsonTexts->size()) table->texts[v] = (*jsonTexts)[next++];
    } else if (!jsonTexts && v->IsString() && v->GetStringLength() > 1 &&
               v->GetString()[0] == '\x01') {
      std::string text(v->GetString() + 1, v->GetStringLength() - 1);
      v->SetDouble(std::strtod(text.c_str(), nullptr));
      table->texts[v] = std::move(text);
    }
  }
  const rapidjson::Document* raw = doc.release();
  return DocumentPtr(raw, DocumentDeleter{std::move(table)});
}

const std::string* exactNumberText(const DocumentPtr& doc, const rapidjson::Value* value) {
  if (!doc) return nullptr;
  const auto* deleter = std::get_deleter<DocumentDeleter>(doc);
  if (!deleter || !deleter->texts) return nullptr;
  auto it = deleter->texts->texts.find(value);
  return it == deleter->texts->texts.end() ? nullptr : &it->second;
}

Decimal jsonNumberDecimal(const DocumentPtr& doc, const rapidjson::Value& v) {
  if (v.IsInt64()) return Decimal::fromInt(v.GetInt64());
  if (const std::string* text = exactNumberText(doc, &v)) {
    if (auto d = Decimal::parse(*text)) return *d;
  }
  if (v.IsUint64()) return Decimal::fromDouble(static_cast<double>(v.GetUint64()));
  return Decimal::fromDouble(v.GetDouble());
}

Result<Node> parseJsonResource(std::string_view text) {
  auto doc = std::make_unique<rapidjson::Document>();
  std::vector<std::string> texts;
  rapidjson::ParseResult result;
  auto generator = [&](rapidjson::Document& handler) {
    rapidjson::Reader reader;
    rapidjson::MemoryStream ms(text.data(), text.size());
    rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream> is(ms);
    ExactNumberHandler h{handler, texts};
    result = reader.Parse<rapidjson::kParseNumbersAsStringsFlag>(is, h);
    return !result.IsError();
  };
  doc->Populate(generator);
  if (result.IsError()) {
    return std::unexpected(jsonParseError(result));
  }
  return Node::resource(makeDocument(std::move(doc), &texts));
}

Result<Node> parseXmlResource(std::string_view text) {
  auto doc = xmlToJson(text);
  if (!doc) return std::unexpected(doc.error());
  return Node::resource(*doc);
}

Result<Node> parseResource(std::string_view text) {
  std::size_t i = 0;
  if (text.starts_with("\xEF\xBB\xBF")) i = 3;
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  if (i < text.size() && text[i] == '<') return parseXmlResource(text);
  return parseJsonResource(text.substr(i));
}

// ---------------------------------------------------------------- environment

void Environment::setVariable(const std::string& name, std::string value) {
  variables[name] = Collection{Node::string(std::move(value))};
}

void Environment::setVariable(const std::string& name, Collection value) {
  variables[name] = std::move(value);
}

void Environment::setVariable(const std::string& name, const rapidjson::Value& value) {
  auto doc = std::make_shared<rapidjson::Document>();
  doc->CopyFrom(value, doc->GetAllocator());
  DocumentPtr shared = doc;
  Collection items;
  auto add = [&](const rapidjson::Value* v) {
    if (v->IsNull()) return;
    if (v->IsString()) {
      items.push_back(Node::string(v->GetString()));
    } else if (v->IsBool()) {
      items.push_back(Node::boolean(v->GetBool()));
    } else if (v->IsInt64()) {
      items.push_back(Node::integer(v->GetInt64()));
    } else if (v->IsNumber()) {
      items.push_back(Node::decimal(Decimal::fromDouble(v->GetDouble())));
    } else {
      items.push_back(Node::element(shared, v, nullptr, guessType(*v), name));
    }
  };
  if (shared->IsArray()) {
    for (auto& item : shared->GetArray()) add(&item);
  } else {
    add(shared.get());
  }
  variables[name] = std::move(items);
}

}  // namespace switchboard::fhirpath
