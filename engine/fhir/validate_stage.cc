// The "fhir-validate" stage. Thread-safety: the definitions cache is guarded by a mutex; stages
// are immutable after creation.
#include "engine/fhir/validate_stage.h"

#include <filesystem>
#include <map>
#include <mutex>

#include "engine/fhir/fhir_cli.h"

namespace switchboard::fhir {

namespace {

// One loaded copy of each definitions directory per process.
Result<std::shared_ptr<const Definitions>> sharedDefinitions(const std::string& dir) {
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<const Definitions>> cache;
  std::lock_guard lock(mutex);
  if (auto it = cache.find(dir); it != cache.end()) return it->second;
  auto loaded = Definitions::load(dir);
  if (!loaded) return std::unexpected(loaded.error());
  cache[dir] = *loaded;
  return *loaded;
}

ErrorCode errorCodeOf(const std::string& issueCode) {
  if (issueCode == "structure") return ErrorCode::kStructure;
  if (issueCode == "required") return ErrorCode::kRequired;
  if (issueCode == "value") return ErrorCode::kValue;
  if (issueCode == "invariant") return ErrorCode::kInvariant;
  if (issueCode == "code-invalid") return ErrorCode::kCodeInvalid;
  if (issueCode == "not-found") return ErrorCode::kNotFound;
  if (issueCode == "not-supported") return ErrorCode::kNotSupported;
  return ErrorCode::kInvalid;
}

}  // namespace

Result<std::unique_ptr<ValidateStage>> ValidateStage::create(ValidateStageConfig config) {
  auto defs = sharedDefinitions(config.definitionsDir);
  if (!defs) return std::unexpected(defs.error());
  for (const auto& p : config.options.profiles) {
    if (!(*defs)->byUrl(p))
      return fail(ErrorCode::kNotFound,
                  "unknown profile " + p + " (not in " + config.definitionsDir + ")");
  }
  Validator validator(*defs);
  return std::unique_ptr<ValidateStage>(new ValidateStage(std::move(config), std::move(validator)));
}

Result<std::unique_ptr<core::Stage>> ValidateStage::fromConfig(core::ConfigReader& config,
                                                               const core::ConnectorContext& ctx) {
  namespace fs = std::filesystem;
  ValidateStageConfig c;
  c.options.profiles = config.strings(
      "profiles", "profiles (canonical URL or id) checked besides the base definitions");
  std::string dir = config.string(
      "definitions", "",
      "fhir-profiles directory; relative paths start at the folder above the config folder; "
      "default: found like `switchboard validate` finds it");
  c.failOnWarning =
      config.boolean("fail_on_warning", false, "fail the message on warnings as well as errors");
  c.options.bestPractice = config.boolean(
      "best_practice", false, "report best-practice invariants (dom-6 narrative) as warnings");
  if (auto r = config.finish(); !r) return std::unexpected(r.error());
  if (dir.empty()) {
    dir = findProfilesDirectory(nullptr);
  } else if (fs::path(dir).is_relative()) {
    fs::path root = ctx.confDir.empty() ? fs::path(".") : fs::path(ctx.confDir).parent_path();
    if (root.empty()) root = ".";
    dir = (root / dir).lexically_normal().string();
  }
  c.definitionsDir = dir;
  auto stage = create(std::move(c));
  if (!stage) {
    return std::unexpected(core::configError(
        config.file(),
        config.pointerOf(stage.error().message.starts_with("unknown profile") ? "profiles"
                                                                              : "definitions"),
        stage.error().message));
  }
  return std::unique_ptr<core::Stage>(std::move(*stage));
}

core::StageResult ValidateStage::process(core::PipelineMessage& message) const {
  auto issues = validator_.validateText(message.payload, config_.options);
  std::size_t errors = 0, warnings = 0;
  const Issue* first = nullptr;
  for (const auto& i : issues) {
    bool isError = i.severity == "error" || i.severity == "fatal";
    bool isWarning = i.severity == "warning";
    errors += isError;
    warnings += isWarning;
    if (!first && (isError || (isWarning && config_.failOnWarning))) first = &i;
  }
  if (!first) {
    message.events.emplace_back("validated", std::to_string(warnings) + " warning(s)");
    return core::StageResult::proceed();
  }
  std::string summary = "FHIR validation failed (" + std::to_string(errors) + " error(s), " +
                        std::to_string(warnings) + " warning(s))";
  int shown = 0;
  for (const auto& i : issues) {
    bool counts = i.severity == "error" || i.severity == "fatal" ||
                  (config_.failOnWarning && i.severity == "warning");
    if (!counts) continue;
    if (shown++ == 3) {
      summary += "; ...";
      break;
    }
    summary += (shown == 1 ? ": " : "; ") + (i.expression.empty() ? "" : i.expression + ": ") +
               i.diagnostics;
  }
  return core::StageResult::failure(Error(errorCodeOf(first->code), summary, first->expression));
}

void registerFhirStages(core::ConnectorRegistry& registry) {
  registry.addStage("fhir-validate", &ValidateStage::fromConfig);
}

}  // namespace switchboard::fhir
