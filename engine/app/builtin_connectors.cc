#include "engine/app/builtin_connectors.h"

#include "channels/file/file_destination.h"
#include "channels/http/register.h"
#include "engine/runtime/builtin_stages.h"

// Optional modules: linked (and SWITCHBOARD_HAVE_* defined) by engine/app/CMakeLists.txt when built.
#if defined(SWITCHBOARD_HAVE_MAPPING) && __has_include("engine/mapping/register.h")
#include "engine/mapping/register.h"
#define SB_REGISTER_MAPPING 1
#endif
#if defined(SWITCHBOARD_HAVE_FHIR) && __has_include("engine/fhir/validate_stage.h")
#include "engine/fhir/definitions.h"
#include "engine/fhir/fhir_cli.h"
#include "engine/fhir/lint.h"
#include "engine/fhir/validate_stage.h"
#define SB_REGISTER_FHIR_VALIDATE 1
#endif
#if defined(SWITCHBOARD_HAVE_CHANNEL_FHIR) && __has_include("channels/fhir/register.h")
#include "channels/fhir/register.h"
#define SB_REGISTER_FHIR 1
#endif

#if defined(SWITCHBOARD_HAVE_WHATSAPP) && __has_include("channels/whatsapp/register.h")
#include "channels/whatsapp/register.h"
#define SB_REGISTER_WHATSAPP 1
#endif
#if defined(SWITCHBOARD_HAVE_8X8) && __has_include("channels/8x8/register.h")
#include "channels/8x8/register.h"
#define SB_REGISTER_8X8 1
#endif
#if defined(SWITCHBOARD_HAVE_TWILIO) && __has_include("channels/twilio/register.h")
#include "channels/twilio/register.h"
#define SB_REGISTER_TWILIO 1
#endif
#if defined(SWITCHBOARD_HAVE_MLLP) && __has_include("channels/mllp/register.h")
#include "channels/mllp/register.h"
#define SB_REGISTER_MLLP 1
#endif
#if defined(SWITCHBOARD_HAVE_SCHEDULING) && __has_include("channels/scheduling/register.h")
#include "channels/scheduling/register.h"
#define SB_REGISTER_SCHEDULING 1
#endif
#if defined(SWITCHBOARD_HAVE_REPLY) && __has_include("channels/reply/register.h")
#include "channels/reply/register.h"
#define SB_REGISTER_REPLY 1
#endif

namespace switchboard::app {

void registerBuiltinConnectors(core::ConnectorRegistry& registry) {
  runtime::registerBuiltinStages(registry);
  channels::registerHttpConnectors(registry);
  channels::registerFileConnectors(registry);
#if defined(SB_REGISTER_MAPPING) && defined(SB_REGISTER_FHIR_VALIDATE)
  // Mapping files are linted against fhir-profiles when they load and whenever they reload: a
  // template writing an element that does not exist, with the wrong type or a code outside a
  // required value set never goes live.
  mapping::registerMappingStages(registry, [](const std::string& file) -> Result<void> {
    static const auto definitions = fhir::Definitions::load(fhir::findProfilesDirectory(nullptr));
    if (!definitions) return std::unexpected(definitions.error());
    auto findings = fhir::lintMappingFile(**definitions, file);
    if (findings.empty()) return {};
    std::string text = "lint: " + std::to_string(findings.size()) + " finding(s)";
    for (std::size_t i = 0; i < findings.size() && i < 5; ++i) text += "; " + fhir::formatFinding(findings[i]);
    return fail(ErrorCode::kInvalid, text);
  });
#elif defined(SB_REGISTER_MAPPING)
  mapping::registerMappingStages(registry);
#endif
#ifdef SB_REGISTER_FHIR_VALIDATE
  fhir::registerFhirStages(registry);
#endif
#ifdef SB_REGISTER_FHIR
  channels::registerFhirConnectors(registry);
#endif
#ifdef SB_REGISTER_MLLP
  channels::registerMllpConnectors(registry);
#endif
#ifdef SB_REGISTER_REPLY
  channels::registerReplyConnectors(registry);
#endif
#ifdef SB_REGISTER_WHATSAPP
  channels::registerWhatsappConnectors(registry);
#endif
#ifdef SB_REGISTER_8X8
  channels::registerEightByEightConnectors(registry);
#endif
#ifdef SB_REGISTER_TWILIO
  channels::registerTwilioConnectors(registry);
#endif
#ifdef SB_REGISTER_SCHEDULING
  channels::registerSchedulingConnectors(registry);
#endif
}

}  // namespace switchboard::app
