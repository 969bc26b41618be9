// The "mpi" pipeline stage: matching and enterprise-id stamping. Thread-safety: see mpi_stage.h.
#include "engine/mpi/mpi_stage.h"

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <vector>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "engine/mpi/json_arena.h"
#include "engine/mpi/payload_sites.h"

namespace switchboard::mpi {
namespace {

// The store batches a stage's submissions on this thread joined since that stage's last
// settle(), per stage: the engine runs a batch's stages and then their settle() on one thread,
// so each settle() answers for the submissions of its own channel's messages of the batch.
struct Joined {
  std::uint64_t stage = 0;
  std::uint64_t first = 0;  // 0: none
  std::uint64_t last = 0;
};
thread_local std::vector<Joined> joinedOnThisThread;
std::atomic<std::uint64_t> nextStageSerial{0};

Joined& joinedBy(std::uint64_t stage) {
  for (auto& j : joinedOnThisThread) {
    if (j.stage == stage) return j;
  }
  return joinedOnThisThread.emplace_back(Joined{stage, 0, 0});
}

class MpiStage final : public core::Stage {
 public:
  MpiStage(std::shared_ptr<MpiService> service, bool hold, std::string sourceSystem)
      : service_(std::move(service)),
        hold_(hold),
        sourceSystem_(std::move(sourceSystem)),
        serial_(nextStageSerial.fetch_add(1) + 1) {}

  Result<void> settle() const override {
    Joined& j = joinedBy(serial_);
    const std::uint64_t first = j.first, last = j.last;
    j.first = j.last = 0;
    return service_->settle(first, last);
  }

  core::StageResult process(core::PipelineMessage& pm) const override {
    JsonArena arena;  // the Bundle and the service's documents (mpi/json_arena.h)
    rapidjson::Document doc = arena.document();
    PayloadSites sites;
    if (parseWithSites(pm.payload, doc, sites).IsError() || !doc.IsObject()) {
      return core::StageResult::failure(
          Error(ErrorCode::kStructure, "mpi: the payload is not FHIR JSON"));
    }
    // Find the Patient: a bare resource or the first Patient entry of a Bundle.
    rapidjson::Value* patient = nullptr;
    rapidjson::Value* entry = nullptr;
    const PatientSite* site = nullptr;  // where the Patient is in the payload's text
    auto isPatient = [](const rapidjson::Value& v) {
      return v.IsObject() && v.HasMember("resourceType") && v["resourceType"].IsString() &&
             std::string_view(v["resourceType"].GetString()) == "Patient";
    };
    if (isPatient(doc)) {
      patient = &doc;
      site = &sites.root;
    } else if (doc.HasMember("entry") && doc["entry"].IsArray()) {
      auto entries = doc["entry"].GetArray();
      for (rapidjson::SizeType i = 0; i < entries.Size(); ++i) {
        auto& e = entries[i];
        if (e.IsObject() && e.HasMember("resource") && isPatient(e["resource"])) {
          patient = &e["resource"];
          entry = &e;
          // The sites describe the root's only "entry" array, element by element.
          if (sites.entryKeys == 1 && sites.entries.size() == entries.Size()) {
            site = &sites.entries[i];
          }
          break;
        }
      }
    }
    if (patient == nullptr)
      return core::StageResult::proceed();  // nothing to match (e.g. a status callback)

    // Each submission is its own source record; a replay of the same message updates it.
    const std::string channel = pm.message ? pm.message->channelId : std::string("channel");
    const std::string sourceSystem = sourceSystem_.empty() ? channel : sourceSystem_;
    std::string sourceId = "m" + std::to_string(pm.message ? pm.message->id : 0);
    rapidjson::Document copy = arena.document();
    copy.CopyFrom(*patient, copy.GetAllocator());
    if (copy.HasMember("id")) copy.RemoveMember("id");
    copy.AddMember("id", rapidjson::Value(sourceId.c_str(), copy.GetAllocator()),
                   copy.GetAllocator());
    // Durable at settle(), which the pipeline calls before the message's deliveries commit. The
    // service takes the copy as parsed (serialize() writes what a parse of its text gives back).
    auto decision = service_->submit(copy, serialize(copy), sourceSystem, "system",
                                     MpiStore::Durability::kDeferred);
    if (!decision) {
      return core::StageResult::failure(
          Error(decision.error().code, "mpi: " + decision.error().message));
    }
    if (decision->batch != 0) {
      Joined& j = joinedBy(serial_);
      if (j.first == 0) j.first = decision->batch;
      j.last = decision->batch;
    }
    const char* result = decisionName(decision->result);
    char score[32];
    std::snprintf(score, sizeof score, "%.4f", decision->score);
    core::setMetadata(pm.metadata, "mpi_decision", result);
    core::setMetadata(pm.metadata, "mpi_enterprise_id", decision->enterpriseId);
    pm.events.emplace_back(
        "mpi", std::string(result) + " enterprise " + decision->enterpriseId + " score " + score +
                   (decision->reviewItemIds.empty()
                        ? std::string()
                        : " review item " + std::to_string(decision->reviewItemIds.front())));
    if (decision->result == Decision::kPossibleMatch && hold_) {
      return core::StageResult::failure(Error(
          ErrorCode::kConflict,
          "mpi: held for review (review item " +
              (decision->reviewItemIds.empty() ? std::string("?")
                                               : std::to_string(decision->reviewItemIds.front())) +
              "); replay the message after the decision"));
    }
    // Point the delivery at the enterprise record: the identifier, and conditional create on it,
    // so every source linked to the same golden record lands on one EHR Patient.
    const bool editRequest =
        entry != nullptr && entry->HasMember("request") && (*entry)["request"].IsObject();
    const std::string condition =
        std::string("identifier=") + kEnterpriseIdSystem + "|" + decision->enterpriseId;
    if (site != nullptr) {
      // The same JSON as the DOM edit below, written into the text instead of serialising
      // the whole Bundle again (payload_sites.h).
      if (auto stamped = stampIdentifier(pm.payload, *site, editRequest, kEnterpriseIdSystem,
                                         decision->enterpriseId, condition)) {
        pm.payload = std::move(*stamped);
        return core::StageResult::proceed();
      }
    }
    auto& alloc = doc.GetAllocator();
    if (!patient->HasMember("identifier") || !(*patient)["identifier"].IsArray()) {
      if (patient->HasMember("identifier")) patient->RemoveMember("identifier");
      patient->AddMember("identifier", rapidjson::Value(rapidjson::kArrayType), alloc);
    }
    rapidjson::Value identifier(rapidjson::kObjectType);
    identifier.AddMember("system", rapidjson::Value(kEnterpriseIdSystem, alloc), alloc);
    identifier.AddMember("value", rapidjson::Value(decision->enterpriseId.c_str(), alloc), alloc);
    (*patient)["identifier"].PushBack(identifier, alloc);
    if (editRequest) {
      auto& request = (*entry)["request"];
      if (request.HasMember("ifNoneExist")) request.RemoveMember("ifNoneExist");
      request.AddMember("ifNoneExist", rapidjson::Value(condition.c_str(), alloc), alloc);
    }
    pm.payload = serialize(doc, pm.payload.size() + 256);
    return core::StageResult::proceed();
  }

 private:
  // capacity: the expected size, so that the buffer is not grown as it is written.
  static std::string serialize(const rapidjson::Value& v, size_t capacity = 1024) {
    rapidjson::StringBuffer buffer(nullptr, capacity);
    rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
    v.Accept(w);
    return {buffer.GetString(), buffer.GetSize()};
  }

  std::shared_ptr<MpiService> service_;
  bool hold_;
  std::string sourceSystem_;
  const std::uint64_t serial_;  // tells stages apart in joinedOnThisThread
};

}  // namespace

void registerMpiStage(core::ConnectorRegistry& registry, std::shared_ptr<MpiService> service) {
  registry.addStage(
      "mpi",
      [service](core::ConfigReader& c,
                const core::ConnectorContext& ctx) -> Result<std::unique_ptr<core::Stage>> {
        const std::string onPossible = c.string("on_possible_match", "hold", "hold or create");
        const std::string sourceSystem =
            c.string("source_system", ctx.channelId, "MPI source name");
        if (onPossible != "hold" && onPossible != "create")
          c.invalid("on_possible_match", "\"hold\" or \"create\"");
        if (auto r = c.finish(); !r) return std::unexpected(r.error());
        return std::make_unique<MpiStage>(service, onPossible == "hold", sourceSystem);
      });
}

}  // namespace switchboard::mpi
