// A compact FHIR R4 type model: the element types of the common data types and of the resources
// the engine meets most (Patient, Observation, Questionnaire, ValueSet, CodeSystem, Parameters,
// Appointment, Bundle ...). Thread-safety: built once on first use, then read-only.
#include <functional>
#include <sstream>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "engine/fhirpath/internal.h"

namespace switchboard::fhirpath {

namespace {

// "Type<Base! name:type name:type* choice[x]:*" ; '*' after a type = repeats, '!' = complete
// (every element is listed, so an unknown name is an error).
const char* const kModel[] = {
    "Element: id:string extension:Extension*",
    "BackboneElement<Element: modifierExtension:Extension*",
    "Resource! id:id meta:Meta implicitRules:uri language:code",
    "DomainResource<Resource! text:Narrative contained:Resource* extension:Extension* "
    "modifierExtension:Extension*",
    "Extension<Element! url:uri value[x]:*",
    "Narrative<Element! status:code div:xhtml",
    "Meta<Element! versionId:id lastUpdated:instant source:uri profile:canonical* "
    "security:Coding* tag:Coding*",
    "Coding<Element! system:uri version:string code:code display:string userSelected:boolean",
    "CodeableConcept<Element! coding:Coding* text:string",
    "Identifier<Element! use:code type:CodeableConcept system:uri value:string period:Period "
    "assigner:Reference",
    "HumanName<Element! use:code text:string family:string given:string* prefix:string* "
    "suffix:string* period:Period",
    "Address<Element! use:code type:code text:string line:string* city:string district:string "
    "state:string postalCode:string country:string period:Period",
    "ContactPoint<Element! system:code value:string use:code rank:positiveInt period:Period",
    "Period<Element! start:dateTime end:dateTime",
    "Quantity<Element! value:decimal comparator:code unit:string system:uri code:code",
    "Age<Quantity!",
    "Count<Quantity!",
    "Distance<Quantity!",
    "Duration<Quantity!",
    "SimpleQuantity<Quantity!",
    "MoneyQuantity<Quantity!",
    "Money<Element! value:decimal currency:code",
    "Range<Element! low:Quantity high:Quantity",
    "Ratio<Element! numerator:Quantity denominator:Quantity",
    "Reference<Element! reference:string type:uri identifier:Identifier display:string",
    "Attachment<Element! contentType:code language:code data:base64Binary url:url size:unsignedInt "
    "hash:base64Binary title:string creation:dateTime",
    "Annotation<Element! author[x]:* time:dateTime text:markdown",
    "SampledData<Element! origin:Quantity period:decimal factor:decimal lowerLimit:decimal "
    "upperLimit:decimal dimensions:positiveInt data:string",
    "Signature<Element! type:Coding* when:instant who:Reference onBehalfOf:Reference "
    "targetFormat:code sigFormat:code data:base64Binary",
    "ContactDetail<Element! name:string telecom:ContactPoint*",
    "UsageContext<Element! code:Coding value[x]:*",
    "Timing<BackboneElement event:dateTime* repeat:Timing.repeat code:CodeableConcept",
    "Timing.repeat<Element bounds[x]:* count:positiveInt countMax:positiveInt duration:decimal "
    "durationMax:decimal durationUnit:code frequency:positiveInt frequencyMax:positiveInt "
    "period:decimal periodMax:decimal periodUnit:code dayOfWeek:code* timeOfDay:time* when:code* "
    "offset:unsignedInt",
    // Resources
    "Patient<DomainResource! identifier:Identifier* active:boolean name:HumanName* "
    "telecom:ContactPoint* gender:code birthDate:date deceased[x]:* address:Address* "
    "maritalStatus:CodeableConcept multipleBirth[x]:* photo:Attachment* contact:Patient.contact* "
    "communication:Patient.communication* generalPractitioner:Reference* "
    "managingOrganization:Reference link:Patient.link*",
    "Patient.contact<BackboneElement! relationship:CodeableConcept* name:HumanName "
    "telecom:ContactPoint* address:Address gender:code organization:Reference period:Period",
    "Patient.communication<BackboneElement! language:CodeableConcept preferred:boolean",
    "Patient.link<BackboneElement! other:Reference type:code",
    "Observation<DomainResource! identifier:Identifier* basedOn:Reference* partOf:Reference* "
    "status:code category:CodeableConcept* code:CodeableConcept subject:Reference "
    "focus:Reference* encounter:Reference effective[x]:* issued:instant performer:Reference* "
    "value[x]:* dataAbsentReason:CodeableConcept interpretation:CodeableConcept* "
    "note:Annotation* bodySite:CodeableConcept method:CodeableConcept specimen:Reference "
    "device:Reference referenceRange:Observation.referenceRange* hasMember:Reference* "
    "derivedFrom:Reference* component:Observation.component*",
    "Observation.referenceRange<BackboneElement! low:Quantity high:Quantity "
    "type:CodeableConcept appliesTo:CodeableConcept* age:Range text:string",
    "Observation.component<BackboneElement! code:CodeableConcept value[x]:* "
    "dataAbsentReason:CodeableConcept interpretation:CodeableConcept* "
    "referenceRange:Observation.referenceRange*",
    "Questionnaire<DomainResource! url:uri identifier:Identifier* version:string name:string "
    "title:string derivedFrom:canonical* status:code experimental:boolean subjectType:code* "
    "date:dateTime publisher:string contact:ContactDetail* description:markdown "
    "useContext:UsageContext* jurisdiction:CodeableConcept* purpose:markdown copyright:markdown "
    "approvalDate:date lastReviewDate:date effectivePeriod:Period code:Coding* "
    "item:Questionnaire.item*",
    "Questionnaire.item<BackboneElement! linkId:string definition:uri code:Coding* prefix:string "
    "text:string type:code enableWhen:Questionnaire.item.enableWhen* enableBehavior:code "
    "required:boolean repeats:boolean readOnly:boolean maxLength:integer "
    "answerValueSet:canonical answerOption:Questionnaire.item.answerOption* "
    "initial:Questionnaire.item.initial* item:Questionnaire.item*",
    "Questionnaire.item.enableWhen<BackboneElement! question:string operator:code answer[x]:*",
    "Questionnaire.item.answerOption<BackboneElement! value[x]:* initialSelected:boolean",
    "Questionnaire.item.initial<BackboneElement! value[x]:*",
    "QuestionnaireResponse<DomainResource identifier:Identifier basedOn:Reference* "
    "partOf:Reference* questionnaire:canonical status:code subject:Reference "
    "encounter:Reference authored:dateTime author:Reference source:Reference "
    "item:QuestionnaireResponse.item*",
    "QuestionnaireResponse.item<BackboneElement linkId:string definition:uri text:string "
    "answer:QuestionnaireResponse.item.answer* item:QuestionnaireResponse.item*",
    "QuestionnaireResponse.item.answer<BackboneElement value[x]:* "
    "item:QuestionnaireResponse.item*",
    "ValueSet<DomainResource url:uri identifier:Identifier* version:string name:string "
    "title:string status:code experimental:boolean date:dateTime publisher:string "
    "contact:ContactDetail* description:markdown useContext:UsageContext* "
    "jurisdiction:CodeableConcept* immutable:boolean purpose:markdown copyright:markdown "
    "compose:ValueSet.compose expansion:ValueSet.expansion",
    "ValueSet.compose<BackboneElement lockedDate:date inactive:boolean "
    "include:ValueSet.compose.include* exclude:ValueSet.compose.include*",
    "ValueSet.compose.include<BackboneElement system:uri version:string "
    "concept:ValueSet.compose.include.concept* filter:ValueSet.compose.include.filter* "
    "valueSet:canonical*",
    "ValueSet.compose.include.concept<BackboneElement code:code display:string",
    "ValueSet.compose.include.filter<BackboneElement property:code op:code value:string",
    "ValueSet.expansion<BackboneElement identifier:uri timestamp:dateTime total:integer "
    "offset:integer parameter:ValueSet.expansion.parameter* contains:ValueSet.expansion.contains*",
    "ValueSet.expansion.parameter<BackboneElement name:string value[x]:*",
    "ValueSet.expansion.contains<BackboneElement system:uri abstract:boolean inactive:boolean "
    "version:string code:code display:string contains:ValueSet.expansion.contains*",
    "CodeSystem<DomainResource url:uri identifier:Identifier* version:string name:string "
    "title:string status:code experimental:boolean date:dateTime publisher:string "
    "contact:ContactDetail* description:markdown caseSensitive:boolean valueSet:canonical "
    "content:code count:unsignedInt filter:CodeSystem.filter* property:CodeSystem.property* "
    "concept:CodeSystem.concept*",
    "CodeSystem.filter<BackboneElement code:code description:string operator:code* value:string",
    "CodeSystem.property<BackboneElement code:code uri:uri description:string type:code",
    "CodeSystem.concept<BackboneElement code:code display:string definition:string "
    "designation:CodeSystem.concept.designation* concept:CodeSystem.concept*",
    "CodeSystem.concept.designation<BackboneElement language:code use:Coding value:string",
    "Parameters<Resource! parameter:Parameters.parameter*",
    "Parameters.parameter<BackboneElement! name:string value[x]:* resource:Resource "
    "part:Parameters.parameter*",
    "Appointment<DomainResource identifier:Identifier* status:code "
    "cancelationReason:CodeableConcept serviceCategory:CodeableConcept* "
    "serviceType:CodeableConcept* specialty:CodeableConcept* appointmentType:CodeableConcept "
    "reasonCode:CodeableConcept* reasonReference:Reference* priority:unsignedInt "
    "description:string supportingInformation:Reference* start:instant end:instant "
    "minutesDuration:positiveInt slot:Reference* created:dateTime comment:string "
    "patientInstruction:string basedOn:Reference* participant:Appointment.participant* "
    "requestedPeriod:Period*",
    "Appointment.participant<BackboneElement type:CodeableConcept* actor:Reference "
    "required:code status:code period:Period",
    "Bundle<Resource identifier:Identifier type:code timestamp:instant total:unsignedInt "
    "link:Bundle.link* entry:Bundle.entry* signature:Signature",
    "Bundle.link<BackboneElement relation:string url:uri",
    "Bundle.entry<BackboneElement link:Bundle.link* fullUrl:uri resource:Resource "
    "search:Bundle.entry.search request:Bundle.entry.request response:Bundle.entry.response",
    "Bundle.entry.search<BackboneElement mode:code score:decimal",
    "Bundle.entry.request<BackboneElement method:code url:uri ifNoneMatch:string "
    "ifModifiedSince:instant ifMatch:string ifNoneExist:string",
    "Bundle.entry.response<BackboneElement status:string location:uri etag:string "
    "lastModified:instant outcome:Resource",
    "OperationOutcome<DomainResource issue:OperationOutcome.issue*",
    "OperationOutcome.issue<BackboneElement severity:code code:code details:CodeableConcept "
    "diagnostics:string location:string* expression:string*",
    "Coverage<DomainResource identifier:Identifier* status:code type:CodeableConcept "
    "policyHolder:Reference subscriber:Reference subscriberId:string beneficiary:Reference "
    "dependent:string relationship:CodeableConcept period:Period payor:Reference* "
    "class:Coverage.class* order:positiveInt network:string",
    "Coverage.class<BackboneElement type:CodeableConcept value:string name:string",
    "Practitioner<DomainResource identifier:Identifier* active:boolean name:HumanName* "
    "telecom:ContactPoint* address:Address* gender:code birthDate:date",
    "Organization<DomainResource identifier:Identifier* active:boolean type:CodeableConcept* "
    "name:string alias:string* telecom:ContactPoint* address:Address* partOf:Reference",
    "Slot<DomainResource identifier:Identifier* serviceType:CodeableConcept* schedule:Reference "
    "status:code start:instant end:instant overbooked:boolean comment:string",
    "Schedule<DomainResource identifier:Identifier* active:boolean actor:Reference* "
    "planningHorizon:Period comment:string",
    "Encounter<DomainResource identifier:Identifier* status:code class:Coding "
    "type:CodeableConcept* subject:Reference period:Period",
};

const char* const kPrimitives[] = {"boolean",  "integer",     "string",       "decimal", "uri",
                                   "url",      "canonical",   "base64Binary", "instant", "date",
                                   "dateTime", "time",        "code",         "oid",     "id",
                                   "markdown", "unsignedInt", "positiveInt",  "uuid",    "xhtml"};

const char* const kResourceTypes[] = {"Account",
                                      "ActivityDefinition",
                                      "AdverseEvent",
                                      "AllergyIntolerance",
                                      "Appointment",
                                      "AppointmentResponse",
                                      "AuditEvent",
                                      "Basic",
                                      "Binary",
                                      "BiologicallyDerivedProduct",
                                      "BodyStructure",
                                      "Bundle",
                                      "CapabilityStatement",
                                      "CarePlan",
                                      "CareTeam",
                                      "CatalogEntry",
                                      "ChargeItem",
                                      "ChargeItemDefinition",
                                      "Claim",
                                      "ClaimResponse",
                                      "ClinicalImpression",
                                      "CodeSystem",
                                      "Communication",
                                      "CommunicationRequest",
                                      "CompartmentDefinition",
                                      "Composition",
                                      "ConceptMap",
                                      "Condition",
                                      "Consent",
                                      "Contract",
                                      "Coverage",
                                      "CoverageEligibilityRequest",
                                      "CoverageEligibilityResponse",
                                      "DetectedIssue",
                                      "Device",
                                      "DeviceDefinition",
                                      "DeviceMetric",
                                      "DeviceRequest",
                                      "DeviceUseStatement",
                                      "DiagnosticReport",
                                      "DocumentManifest",
                                      "DocumentReference",
                                      "EffectEvidenceSynthesis",
                                      "Encounter",
                                      "Endpoint",
                                      "EnrollmentRequest",
                                      "EnrollmentResponse",
                                      "EpisodeOfCare",
                                      "EventDefinition",
                                      "Evidence",
                                      "EvidenceVariable",
                                      "ExampleScenario",
                                      "ExplanationOfBenefit",
                                      "FamilyMemberHistory",
                                      "Flag",
                                      "Goal",
                                      "GraphDefinition",
                                      "Group",
                                      "GuidanceResponse",
                                      "HealthcareService",
                                      "ImagingStudy",
                                      "Immunization",
                                      "ImmunizationEvaluation",
                                      "ImmunizationRecommendation",
                                      "ImplementationGuide",
                                      "InsurancePlan",
                                      "Invoice",
                                      "Library",
                                      "Linkage",
                                      "List",
                                      "Location",
                                      "Measure",
                                      "MeasureReport",
                                      "Media",
                                      "Medication",
                                      "MedicationAdministration",
                                      "MedicationDispense",
                                      "MedicationKnowledge",
                                      "MedicationRequest",
                                      "MedicationStatement",
                                      "MedicinalProduct",
                                      "MedicinalProductAuthorization",
                                      "MedicinalProductContraindication",
                                      "MedicinalProductIndication",
                                      "MedicinalProductIngredient",
                                      "MedicinalProductInteraction",
                                      "MedicinalProductManufactured",
                                      "MedicinalProductPackaged",
                                      "MedicinalProductPharmaceutical",
                                      "MedicinalProductUndesirableEffect",
                                      "MessageDefinition",
                                      "MessageHeader",
                                      "MolecularSequence",
                                      "NamingSystem",
                                      "NutritionOrder",
                                      "Observation",
                                      "ObservationDefinition",
                                      "OperationDefinition",
                                      "OperationOutcome",
                                      "Organization",
                                      "OrganizationAffiliation",
                                      "Parameters",
                                      "Patient",
                                      "PaymentNotice",
                                      "PaymentReconciliation",
                                      "Person",
                                      "PlanDefinition",
                                      "Practitioner",
                                      "PractitionerRole",
                                      "Procedure",
                                      "Provenance",
                                      "Questionnaire",
                                      "QuestionnaireResponse",
                                      "RelatedPerson",
                                      "RequestGroup",
                                      "ResearchDefinition",
                                      "ResearchElementDefinition",
                                      "ResearchStudy",
                                      "ResearchSubject",
                                      "RiskAssessment",
                                      "RiskEvidenceSynthesis",
                                      "Schedule",
                                      "SearchParameter",
                                      "ServiceRequest",
                                      "Slot",
                                      "Specimen",
                                      "SpecimenDefinition",
                                      "StructureDefinition",
                                      "StructureMap",
                                      "Subscription",
                                      "Substance",
                                      "SubstanceNucleicAcid",
                                      "SubstancePolymer",
                                      "SubstanceProtein",
                                      "SubstanceReferenceInformation",
                                      "SubstanceSourceMaterial",
                                      "SubstanceSpecification",
                                      "SupplyDelivery",
                                      "SupplyRequest",
                                      "Task",
                                      "TerminologyCapabilities",
                                      "TestReport",
                                      "TestScript",
                                      "ValueSet",
                                      "VerificationResult",
                                      "VisionPrescription"};

const char* const kComplexTypes[] = {"Address",
                                     "Age",
                                     "Annotation",
                                     "Attachment",
                                     "CodeableConcept",
                                     "Coding",
                                     "ContactPoint",
                                     "Count",
                                     "Distance",
                                     "Duration",
                                     "HumanName",
                                     "Identifier",
                                     "Money",
                                     "Period",
                                     "Quantity",
                                     "Range",
                                     "Ratio",
                                     "Reference",
                                     "SampledData",
                                     "Signature",
                                     "Timing",
                                     "ContactDetail",
                                     "Contributor",
                                     "DataRequirement",
                                     "Expression",
                                     "ParameterDefinition",
                                     "RelatedArtifact",
                                     "TriggerDefinition",
                                     "UsageContext",
                                     "Dosage",
                                     "Meta"};

// Hashed by name, looked up by string_view without a copy: every navigation step of the FHIRPath
// engine asks the model (an ordered map compared names character by character at each level).
struct NameHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
template <typename V>
using NameMap = std::unordered_map<std::string, V, NameHash, std::equal_to<>>;
using NameSet = std::unordered_set<std::string, NameHash, std::equal_to<>>;

struct TypeDef {
  std::string base;
  bool complete = false;
  NameMap<ElementInfo> elements;
};

struct Model {
  NameMap<TypeDef> types;
  NameSet primitives, resources, complexTypes;
  NameMap<std::string> suffixes;  // "DateTime" -> "dateTime"

  Model() {
    for (const char* p : kPrimitives) {
      primitives.insert(p);
      std::string s = p;
      s[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(s[0])));
      suffixes[s] = p;
    }
    for (const char* r : kResourceTypes) resources.insert(r);
    for (const char* c : kComplexTypes) {
      complexTypes.insert(c);
      suffixes[c] = c;
    }
    for (const char* line : kModel) {
      std::string text = line;
      std::size_t head = text.find_first_of(":! ");
      std::string nameBase = text.substr(0, head);
      bool complete = head != std::string::npos && text[head] == '!';
      std::string rest = head == std::string::npos ? "" : text.substr(head + 1);
      TypeDef def;
      def.complete = complete;
      std::string name = nameBase;
      if (auto lt = nameBase.find('<'); lt != std::string::npos) {
        name = nameBase.substr(0, lt);
        def.base = nameBase.substr(lt + 1);
      }
      std::istringstream in(rest);
      std::string tok;
      while (in >> tok) {
        auto colon = tok.find(':');
        if (colon == std::string::npos) continue;
        std::string el = tok.substr(0, colon), type = tok.substr(colon + 1);
        ElementInfo info;
        if (!type.empty() && type.back() == '*') {
          info.repeats = true;
          type.pop_back();
        }
        if (el.size() > 3 && el.ends_with("[x]")) {
          el = el.substr(0, el.size() - 3);
          info.choice = true;
          type.clear();
        }
        info.type = type;
        def.elements[el] = info;
      }
      types[name] = std::move(def);
    }
  }
};

const Model& model() {
  static const Model kInstance;
  return kInstance;
}

}  // namespace

bool isPrimitiveType(std::string_view t) { return model().primitives.contains(t); }
bool isResourceType(std::string_view n) {
  return model().resources.contains(n) || n == "Resource" || n == "DomainResource";
}
bool isKnownType(std::string_view n) {
  const Model& m = model();
  return m.primitives.contains(n) || m.resources.contains(n) || m.complexTypes.contains(n) ||
         m.types.contains(n) || n == "Element" || n == "BackboneElement" || n == "Resource" ||
         n == "DomainResource" || n == "SimpleQuantity" || n == "MoneyQuantity";
}

const ElementInfo* elementInfo(std::string_view parentType, std::string_view name) {
  const Model& m = model();
  std::string_view type = parentType;  // then the bases' names, which the model keeps
  for (int guard = 0; guard < 8 && !type.empty(); ++guard) {
    auto it = m.types.find(type);
    if (it == m.types.end()) {
      if (m.resources.contains(type)) {
        type = "DomainResource";
        continue;
      }
      if (m.primitives.contains(type)) {
        type = "Element";
        continue;
      }
      if (m.complexTypes.contains(type)) {
        type = "Element";
        continue;
      }
      return nullptr;
    }
    auto el = it->second.elements.find(name);
    if (el != it->second.elements.end()) return &el->second;
    type = it->second.base;
  }
  return nullptr;
}

bool typeIsComplete(std::string_view type) {
  const Model& m = model();
  auto it = m.types.find(type);
  return it != m.types.end() && it->second.complete;
}

std::string baseType(std::string_view type) {
  const Model& m = model();
  auto it = m.types.find(type);
  if (it != m.types.end() && !it->second.base.empty()) return it->second.base;
  if (type == "code" || type == "markdown" || type == "id") return "string";
  if (type == "unsignedInt" || type == "positiveInt") return "integer";
  if (type == "url" || type == "canonical" || type == "oid" || type == "uuid") return "uri";
  if (m.resources.contains(type))
    return type == "Bundle" || type == "Parameters" || type == "Binary" ? "Resource"
                                                                        : "DomainResource";
  if (type == "DomainResource") return "Resource";
  if (m.primitives.contains(type) || m.complexTypes.contains(type)) return "Element";
  if (type.find('.') != std::string_view::npos) return "BackboneElement";
  if (type == "BackboneElement") return "Element";
  return {};
}

std::optional<std::string> choiceSuffixType(std::string_view suffix) {
  const Model& m = model();
  auto it = m.suffixes.find(suffix);
  if (it == m.suffixes.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> systemTypeOf(std::string_view t) {
  if (t == "boolean") return "Boolean";
  if (t == "integer" || t == "unsignedInt" || t == "positiveInt") return "Integer";
  if (t == "decimal") return "Decimal";
  if (t == "date") return "Date";
  if (t == "dateTime" || t == "instant") return "DateTime";
  if (t == "time") return "Time";
  if (t == "Quantity" || t == "Age" || t == "Count" || t == "Distance" || t == "Duration" ||
      t == "SimpleQuantity" || t == "MoneyQuantity")
    return "Quantity";
  if (model().primitives.contains(t)) return "String";
  return std::nullopt;
}

}  // namespace switchboard::fhirpath
