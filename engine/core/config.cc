#include "engine/core/config.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include <rapidjson/error/en.h>

namespace switchboard::core {

namespace {

std::string escapePointerToken(std::string_view token) {
  std::string out;
  for (char c : token) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out += c;
  }
  return out;
}

Result<std::string> readWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(ErrorCode::kNotFound, "cannot read file " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Result<void> expandTree(rapidjson::Value& value, rapidjson::Document::AllocatorType& alloc,
                        const std::string& file, const std::string& pointer) {
  if (value.IsString()) {
    std::string_view text(value.GetString(), value.GetStringLength());
    if (text.find("${") == std::string_view::npos) return {};
    auto expanded = expandReferences(text, file + ": " + (pointer.empty() ? "/" : pointer));
    if (!expanded) return std::unexpected(expanded.error());
    value.SetString(expanded->c_str(), static_cast<rapidjson::SizeType>(expanded->size()), alloc);
  } else if (value.IsObject()) {
    for (auto& m : value.GetObject()) {
      std::string child = pointer + "/" +
                          escapePointerToken({m.name.GetString(), m.name.GetStringLength()});
      if (auto r = expandTree(m.value, alloc, file, child); !r) return r;
    }
  } else if (value.IsArray()) {
    rapidjson::SizeType i = 0;
    for (auto& v : value.GetArray()) {
      if (auto r = expandTree(v, alloc, file, pointer + "/" + std::to_string(i++)); !r) return r;
    }
  }
  return {};
}

const char* typeName(const rapidjson::Value& v) {
  if (v.IsNull()) return "null";
  if (v.IsBool()) return "a boolean";
  if (v.IsString()) return "a string";
  if (v.IsNumber()) return "a number";
  if (v.IsArray()) return "an array";
  return "an object";
}

}  // namespace

Error configError(std::string_view file, std::string_view pointer, std::string_view expected) {
  std::string msg(file);
  msg += ": ";
  msg += pointer.empty() ? std::string_view("/") : pointer;
  msg += ": ";
  msg += expected;
  return Error(ErrorCode::kInvalid, std::move(msg), std::string(pointer));
}

Result<std::string> expandReferences(std::string_view text, std::string_view where) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    size_t start = text.find("${", i);
    if (start == std::string_view::npos) {
      out.append(text.substr(i));
      break;
    }
    out.append(text.substr(i, start - i));
    size_t end = text.find('}', start);
    if (end == std::string_view::npos) {
      return fail(ErrorCode::kInvalid,
                  std::string(where) + ": unterminated ${...} reference");
    }
    std::string_view ref = text.substr(start + 2, end - start - 2);
    if (ref.starts_with("env:")) {
      std::string_view spec = ref.substr(4);
      std::optional<std::string_view> fallback;
      if (size_t d = spec.find(":-"); d != std::string_view::npos) {
        fallback = spec.substr(d + 2);
        spec = spec.substr(0, d);
      }
      std::string name(spec);
      const char* v = std::getenv(name.c_str());
      if (v != nullptr && *v != '\0') {
        out += v;
      } else if (fallback) {
        out.append(*fallback);
      } else {
        return fail(ErrorCode::kRequired, std::string(where) + ": environment variable " + name +
                                              " is not set (referenced as ${env:" + name + "})");
      }
    } else if (ref.starts_with("file:")) {
      std::string path(ref.substr(5));
      auto content = readWholeFile(path);
      if (!content) {
        return fail(ErrorCode::kRequired,
                    std::string(where) + ": cannot read file " + path + " (referenced as ${file:...})");
      }
      std::string c = std::move(*content);
      if (!c.empty() && c.back() == '\n') c.pop_back();
      if (!c.empty() && c.back() == '\r') c.pop_back();
      out += c;
    } else {
      return fail(ErrorCode::kInvalid, std::string(where) + ": unknown reference ${" +
                                           std::string(ref) + "}; expected ${env:NAME} or ${file:/path}");
    }
    i = end + 1;
  }
  return out;
}

Result<ConfigFile> loadConfigFile(const std::string& path) {
  auto text = readWholeFile(path);
  if (!text) return fail(ErrorCode::kNotFound, path + ": cannot read the file");
  auto doc = std::make_shared<rapidjson::Document>();
  doc->Parse(text->c_str(), text->size());
  if (doc->HasParseError()) {
    return fail(ErrorCode::kStructure,
                path + ": invalid JSON at offset " + std::to_string(doc->GetErrorOffset()) + ": " +
                    rapidjson::GetParseError_En(doc->GetParseError()));
  }
  if (!doc->IsObject()) return std::unexpected(configError(path, "", "expected a JSON object"));
  if (auto r = expandTree(*doc, doc->GetAllocator(), path, ""); !r) {
    return std::unexpected(r.error());
  }
  return ConfigFile{path, std::move(doc)};
}

ConfigReader::ConfigReader(const rapidjson::Value& value, std::string file, std::string pointer)
    : value_(value), file_(std::move(file)), pointer_(std::move(pointer)) {
  if (!value_.IsObject()) {
    error_ = configError(file_, pointer_, std::string("expected an object, found ") + typeName(value_));
  }
}

std::string ConfigReader::pointerOf(std::string_view key) const {
  return pointer_ + "/" + escapePointerToken(key);
}

void ConfigReader::invalid(std::string_view key, std::string_view expected) {
  if (!error_) error_ = configError(file_, pointerOf(key), expected);
}

void ConfigReader::skip(std::string_view key) { known_.emplace_back(key); }

const rapidjson::Value* ConfigReader::find(std::string_view key, std::string_view type,
                                           std::string defaultText, std::string_view description,
                                           bool required) {
  known_.emplace_back(key);
  schema_.push_back({std::string(key), std::string(type), std::move(defaultText),
                     std::string(description), required});
  if (!value_.IsObject()) return nullptr;
  auto it = value_.FindMember(rapidjson::Value(rapidjson::StringRef(key.data(), key.size())));
  if (it == value_.MemberEnd() || it->value.IsNull()) {
    if (required) invalid(key, "required " + std::string(type) + " is missing (" + std::string(description) + ")");
    return nullptr;
  }
  return &it->value;
}

std::string ConfigReader::string(std::string_view key, std::string defaultValue,
                                 std::string_view description) {
  const auto* v = find(key, "string", defaultValue, description, false);
  if (v == nullptr) return defaultValue;
  if (!v->IsString()) {
    invalid(key, std::string("expected a string, found ") + typeName(*v));
    return defaultValue;
  }
  return {v->GetString(), v->GetStringLength()};
}

std::string ConfigReader::requiredString(std::string_view key, std::string_view description) {
  const auto* v = find(key, "string", "", description, true);
  if (v == nullptr) return {};
  if (!v->IsString()) {
    invalid(key, std::string("expected a string, found ") + typeName(*v));
    return {};
  }
  if (v->GetStringLength() == 0) invalid(key, "expected a non-empty string");
  return {v->GetString(), v->GetStringLength()};
}

std::int64_t ConfigReader::integer(std::string_view key, std::int64_t defaultValue,
                                   std::int64_t min, std::int64_t max,
                                   std::string_view description) {
  const auto* v = find(key, "integer", std::to_string(defaultValue), description, false);
  if (v == nullptr) return defaultValue;
  if (!v->IsInt64()) {
    invalid(key, std::string("expected an integer, found ") + typeName(*v));
    return defaultValue;
  }
  std::int64_t n = v->GetInt64();
  if (n < min || n > max) {
    invalid(key, "expected an integer from " + std::to_string(min) + " to " + std::to_string(max) +
                     ", found " + std::to_string(n));
    return defaultValue;
  }
  return n;
}

double ConfigReader::number(std::string_view key, double defaultValue,
                            std::string_view description) {
  const auto* v = find(key, "number", std::to_string(defaultValue), description, false);
  if (v == nullptr) return defaultValue;
  if (!v->IsNumber()) {
    invalid(key, std::string("expected a number, found ") + typeName(*v));
    return defaultValue;
  }
  return v->GetDouble();
}

bool ConfigReader::boolean(std::string_view key, bool defaultValue, std::string_view description) {
  const auto* v = find(key, "boolean", defaultValue ? "true" : "false", description, false);
  if (v == nullptr) return defaultValue;
  if (!v->IsBool()) {
    invalid(key, std::string("expected true or false, found ") + typeName(*v));
    return defaultValue;
  }
  return v->GetBool();
}

std::optional<bool> ConfigReader::optionalBoolean(std::string_view key,
                                                  std::string_view description) {
  const auto* v = find(key, "boolean", "", description, false);
  if (v == nullptr) return std::nullopt;
  if (!v->IsBool()) {
    invalid(key, std::string("expected true or false, found ") + typeName(*v));
    return std::nullopt;
  }
  return v->GetBool();
}

std::vector<std::string> ConfigReader::strings(std::string_view key, std::string_view description) {
  std::vector<std::string> out;
  const auto* v = find(key, "string[]", "[]", description, false);
  if (v == nullptr) return out;
  if (!v->IsArray()) {
    invalid(key, std::string("expected an array of strings, found ") + typeName(*v));
    return out;
  }
  for (const auto& item : v->GetArray()) {
    if (!item.IsString()) {
      invalid(key, "expected an array of strings");
      return {};
    }
    out.emplace_back(item.GetString(), item.GetStringLength());
  }
  return out;
}

const rapidjson::Value* ConfigReader::object(std::string_view key, bool required,
                                             std::string_view description) {
  const auto* v = find(key, "object", "", description, required);
  if (v != nullptr && !v->IsObject()) {
    invalid(key, std::string("expected an object, found ") + typeName(*v));
    return nullptr;
  }
  return v;
}

const rapidjson::Value* ConfigReader::array(std::string_view key, bool required,
                                            std::string_view description) {
  const auto* v = find(key, "array", "", description, required);
  if (v != nullptr && !v->IsArray()) {
    invalid(key, std::string("expected an array, found ") + typeName(*v));
    return nullptr;
  }
  return v;
}

ConfigReader ConfigReader::child(const rapidjson::Value& value, std::string_view key) const {
  return ConfigReader(value, file_, pointerOf(key));
}

Result<void> ConfigReader::finish() {
  if (error_) return std::unexpected(*error_);
  if (!value_.IsObject()) return {};
  for (const auto& m : value_.GetObject()) {
    std::string_view name(m.name.GetString(), m.name.GetStringLength());
    bool known = false;
    for (const auto& k : known_) {
      if (k == name) {
        known = true;
        break;
      }
    }
    if (!known) {
      std::string expected = "unknown key \"" + std::string(name) + "\"; expected one of:";
      for (const auto& k : known_) expected += " " + k;
      return std::unexpected(configError(file_, pointerOf(name), expected));
    }
  }
  return {};
}

}  // namespace switchboard::core
