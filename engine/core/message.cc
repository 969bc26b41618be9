#include "engine/core/message.h"

namespace switchboard::core {

const std::string* findMetadata(const Metadata& metadata, std::string_view key) {
  for (const auto& [k, v] : metadata) {
    if (k == key) return &v;
  }
  return nullptr;
}

void setMetadata(Metadata& metadata, std::string key, std::string value) {
  for (auto& [k, v] : metadata) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  metadata.emplace_back(std::move(key), std::move(value));
}

}  // namespace switchboard::core
