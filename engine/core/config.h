// Typed configuration: JSON config files are loaded once, `${env:NAME}` and `${file:/path}`
// references are expanded, and each connector reads its keys through a ConfigReader that checks
// types and rejects unknown keys, naming the file, the field (JSON pointer) and what was expected.
// Thread-safety: ConfigReader is single-threaded; loaded documents are immutable afterwards.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

#include "engine/core/error.h"

namespace switchboard::core {

// A parsed JSON config file with references expanded.
struct ConfigFile {
  std::string path;  // as given, used in error messages
  std::shared_ptr<rapidjson::Document> document;
};

// Reads and parses `path`, then expands `${env:NAME}` and `${file:/path}` in every string value.
// `${env:NAME:-default}` falls back to `default` when NAME is unset or empty. A missing variable
// or unreadable file is an error naming the file and the JSON pointer of the field. File contents
// have one trailing newline removed.
Result<ConfigFile> loadConfigFile(const std::string& path);

// Expands references in one string; `where` names the field for error messages.
Result<std::string> expandReferences(std::string_view text, std::string_view where);

// One entry of a connector's config schema, for documentation and the admin page.
struct ConfigKeyInfo {
  std::string key;
  std::string type;  // string, integer, boolean, object, array, string[]
  std::string defaultValue;
  std::string description;
  bool required = false;
};

// Reads one JSON object with type checks. Getters never throw: the first problem is remembered
// and reported by finish(), which also rejects keys nobody asked for.
class ConfigReader {
 public:
  // `value` must outlive the reader. `file` and `pointer` locate it for error messages.
  ConfigReader(const rapidjson::Value& value, std::string file, std::string pointer);

  std::string string(std::string_view key, std::string defaultValue, std::string_view description);
  std::string requiredString(std::string_view key, std::string_view description);
  std::int64_t integer(std::string_view key, std::int64_t defaultValue, std::int64_t min,
                       std::int64_t max, std::string_view description);
  double number(std::string_view key, double defaultValue, std::string_view description);
  bool boolean(std::string_view key, bool defaultValue, std::string_view description);
  std::optional<bool> optionalBoolean(std::string_view key, std::string_view description);
  std::vector<std::string> strings(std::string_view key, std::string_view description);
  // A nested object (or nullptr when absent); the caller reads it with child().
  const rapidjson::Value* object(std::string_view key, bool required, std::string_view description);
  const rapidjson::Value* array(std::string_view key, bool required, std::string_view description);
  // Marks a key as known without reading it (read by someone else).
  void skip(std::string_view key);

  // A reader for a nested object found at `key`.
  ConfigReader child(const rapidjson::Value& value, std::string_view key) const;

  // Records a caller-detected problem with `key`.
  void invalid(std::string_view key, std::string_view expected);

  // Error for the first problem, or an unknown key.
  Result<void> finish();

  const std::vector<ConfigKeyInfo>& schema() const { return schema_; }
  const std::string& file() const { return file_; }
  std::string pointerOf(std::string_view key) const;

 private:
  const rapidjson::Value* find(std::string_view key, std::string_view type, std::string defaultText,
                               std::string_view description, bool required);

  const rapidjson::Value& value_;
  std::string file_;
  std::string pointer_;
  std::vector<std::string> known_;
  std::vector<ConfigKeyInfo> schema_;
  std::optional<Error> error_;
};

// Formats "FILE: POINTER: expected ..." as an Error.
Error configError(std::string_view file, std::string_view pointer, std::string_view expected);

}  // namespace switchboard::core
