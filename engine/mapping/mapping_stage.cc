// The "mapping" stage. Thread-safety: see mapping_stage.h.
#include "engine/mapping/mapping_stage.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "engine/core/time_zone.h"

namespace switchboard::mapping {
namespace fs = std::filesystem;

namespace {

void appendStat(const fs::path& p, std::string& out) {
  std::error_code ec;
  auto time = fs::last_write_time(p, ec);
  auto size = ec ? 0 : fs::file_size(p, ec);
  out += p.string() + "|" +
         (ec ? std::string("-")
             : std::to_string(time.time_since_epoch().count()) + "|" + std::to_string(size)) +
         "\n";
}

}  // namespace

Result<std::unique_ptr<MappingStage>> MappingStage::create(MappingStageConfig config) {
  auto mapping = Mapping::loadFile(config.file, config.load);
  if (!mapping) return std::unexpected(mapping.error());
  if (config.check) {
    if (auto ok = config.check(config.file); !ok) return std::unexpected(ok.error());
  }
  std::unique_ptr<MappingStage> stage(new MappingStage(std::move(config)));
  stage->mapping_ = *mapping;
  stage->signature_ = stage->fileSignature();
  stage->lastCheck_ = std::chrono::steady_clock::now();
  return stage;
}

Result<std::unique_ptr<core::Stage>> MappingStage::fromConfig(core::ConfigReader& config,
                                                              const core::ConnectorContext& ctx) {
  return fromConfigChecked(config, ctx, {});
}

Result<std::unique_ptr<core::Stage>> MappingStage::fromConfigChecked(
    core::ConfigReader& config, const core::ConnectorContext& ctx,
    const std::function<Result<void>(const std::string&)>& check) {
  MappingStageConfig c;
  c.check = check;
  std::string file = config.requiredString(
      "file",
      "mapping file; relative paths start at the folder above the config folder (the repo root)");
  const rapidjson::Value* vars = config.object(
      "variables", false,
      "values visible as %name in expressions (facility, timezone, appointment_status, ...)");
  c.kinds = config.strings(
      "kinds", "metadata kinds to map (e.g. [\"flow\"]); others are dropped; empty = all");
  c.reloadInterval = std::chrono::milliseconds(config.integer(
      "reload_interval_ms", 1000, 0, 3600000, "how often to look for a changed mapping file"));
  if (vars) {
    for (auto it = vars->MemberBegin(); it != vars->MemberEnd(); ++it) {
      c.variables.setVariable(it->name.GetString(), it->value);
    }
    if (auto tz = vars->FindMember("timezone"); tz != vars->MemberEnd()) {
      if (!tz->value.IsString() || !core::TimeZone::get(tz->value.GetString())) {
        config.invalid("variables",
                       "variables.timezone to be an IANA time zone such as America/New_York");
      }
    }
  }
  if (auto r = config.finish(); !r) return std::unexpected(r.error());
  fs::path p(file);
  if (p.is_relative()) {
    fs::path root = ctx.confDir.empty() ? fs::path(".") : fs::path(ctx.confDir).parent_path();
    if (root.empty()) root = ".";
    p = root / p;
  }
  c.file = p.lexically_normal().string();
  auto stage = create(std::move(c));
  if (!stage) {
    return std::unexpected(
        core::configError(config.file(), config.pointerOf("file"), stage.error().message));
  }
  return std::unique_ptr<core::Stage>(std::move(*stage));
}

std::string MappingStage::fileSignature() const {
  std::string sig;
  appendStat(config_.file, sig);
  std::string dir = mapping_ ? mapping_->conceptMapDir() : std::string();
  if (dir.empty()) return sig;
  std::error_code ec;
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.path().extension() == ".json") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) appendStat(f, sig);
  return sig;
}

void MappingStage::maybeReload() const {
  std::lock_guard lock(mutex_);
  const auto now = std::chrono::steady_clock::now();
  if (config_.reloadInterval.count() > 0 && now - lastCheck_ < config_.reloadInterval) return;
  lastCheck_ = now;
  std::string sig = fileSignature();
  if (sig == signature_) return;
  signature_ = sig;
  auto fresh = Mapping::loadFile(config_.file, config_.load);
  if (fresh && config_.check) {
    if (auto ok = config_.check(config_.file); !ok) fresh = std::unexpected(ok.error());
  }
  if (!fresh) {
    std::fprintf(
        stderr, "switchboard: mapping %s: reload rejected, the previous version stays active: %s\n",
        config_.file.c_str(), fresh.error().message.c_str());
    return;
  }
  mapping_ = *fresh;
  signature_ = fileSignature();
  std::fprintf(stderr, "switchboard: mapping %s: reloaded\n", config_.file.c_str());
}

std::shared_ptr<const Mapping> MappingStage::current() const {
  maybeReload();
  std::lock_guard lock(mutex_);
  return mapping_;
}

core::StageResult MappingStage::process(core::PipelineMessage& pm) const {
  const std::string* kind = core::findMetadata(pm.metadata, "kind");
  if (!config_.kinds.empty() && (!kind || std::find(config_.kinds.begin(), config_.kinds.end(),
                                                    *kind) == config_.kinds.end())) {
    return core::StageResult::drop("mapping: kind \"" + (kind ? *kind : std::string()) +
                                   "\" is not mapped");
  }
  std::shared_ptr<const Mapping> mapping = current();
  fhirpath::Environment env;
  env.variables = config_.variables.variables;
  auto meta = [&](const char* key, const char* var) {
    if (const std::string* v = core::findMetadata(pm.metadata, key); v && !v->empty())
      env.setVariable(var, *v);
  };
  meta("sender", "sender");
  meta("sender_raw", "sender_raw");
  meta("provider", "provider");
  meta("provider_message_id", "provider_message_id");
  meta("flow_token", "flow_token");
  meta("facility", "facility");  // the scheduling source's facility, named by the request's key
  if (pm.message && !pm.message->channelId.empty())
    env.setVariable("channel", pm.message->channelId);
  std::int64_t receivedMs = pm.message ? pm.message->receivedAtMs : 0;
  if (const std::string* v = core::findMetadata(pm.metadata, "received_at_ms")) {
    char* end = nullptr;
    long long ms = std::strtoll(v->c_str(), &end, 10);
    if (end && *end == 0 && !v->empty()) receivedMs = ms;
  }
  if (receivedMs > 0) {
    if (auto t = fhirpath::Temporal::parse(core::utcInstant(receivedMs),
                                           fhirpath::TemporalKind::kDateTime))
      env.variables["receivedAt"] = fhirpath::Collection{fhirpath::Node::temporal(*t)};
  }
  auto out = mapping->run(pm.payload, env);
  if (!out) return core::StageResult::failure(out.error());
  pm.payload = std::move(out->payload);
  pm.contentType = std::move(out->contentType);
  pm.events.emplace_back("mapped", "mapping " + mapping->id());
  return core::StageResult::proceed();
}

}  // namespace switchboard::mapping
