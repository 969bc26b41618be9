// Declarative mapping files (docs/mapping-language.md): a JSON template shaped like its output,
// with FHIRPath in `{{ }}`, directives ($if, $each/$as, $let, $value, $translate, $localInstant,
// $fromHl7Date, $toHl7Date) and references between produced resources, turned into a FHIR
// transaction Bundle (or a list of standalone resources) with deterministic urn:uuid fullUrls, or
// into an HL7 v2 ER7 message ("output": "hl7v2"). The input is JSON, a WhatsApp Flow submission
// or an HL7 v2 message ("input": "hl7v2").
// Thread-safety: a loaded Mapping is immutable; run() may be called from many threads at once.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "engine/core/error.h"
#include "engine/fhirpath/fhirpath.h"
#include "engine/mapping/concept_map.h"

namespace switchboard::mapping {

struct MappingOutput {
  std::string payload;      // Bundle JSON, a JSON array of resources, or ER7 (segments end CR)
  std::string contentType;  // application/fhir+json, or application/hl7-v2
};

struct LoadOptions {
  // Where ConceptMaps are read from; default: the file's "conceptmaps" key, else the folder
  // "conceptmaps" next to the mapping file.
  std::string conceptMapDir;
  // Root of the IANA zoneinfo files; default $TZDIR or /usr/share/zoneinfo.
  std::string zoneinfoRoot;
};

class Mapping {
 public:
  // Reads, parses, checks and compiles a mapping file (every expression compiled, every
  // directive checked). Errors name the file and the JSON pointer of the problem.
  static Result<std::shared_ptr<const Mapping>> loadFile(const std::string& path,
                                                         const LoadOptions& options = {});
  // Same from text; `file` is used in messages and to find the ConceptMap folder when `maps` is
  // null.
  static Result<std::shared_ptr<const Mapping>> load(std::string_view json, const std::string& file,
                                                     std::shared_ptr<const ConceptMapSet> maps,
                                                     const LoadOptions& options = {});
  ~Mapping();
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;

  const std::string& id() const;
  const std::string& file() const;
  // The folder its ConceptMaps were read from (empty when they were given to load()).
  const std::string& conceptMapDir() const;

  // Maps one input. `variables` are the caller's (%sender, %channel, %facility, %receivedAt,
  // %timezone, ...); they override the file's "variables" defaults. Errors carry a message fit
  // for an OperationOutcome and, in Error::location, the input field (FHIRPath) or template
  // pointer at fault. Same input and variables give byte-identical output.
  // Runs the compiled plans (plan_expr.h) when every expression has one and they can decide the
  // input; otherwise, and for whatever they decline, the general FHIRPath engine.
  Result<MappingOutput> run(std::string_view input, const fhirpath::Environment& variables) const;
  // The same through the general FHIRPath engine only: the reference the plans are tested against.
  Result<MappingOutput> runGeneral(std::string_view input,
                                   const fhirpath::Environment& variables) const;
  // The same through the compiled plans only: kNotSupported when the file has expressions
  // without a plan or the plans decline the input. For tests and benchmarks.
  Result<MappingOutput> runPlanned(std::string_view input,
                                   const fhirpath::Environment& variables) const;
  // Whether every expression of the file compiled to a plan.
  bool planned() const;

  struct Impl;

 private:
  explicit Mapping(std::unique_ptr<Impl> impl);
  // run(), runGeneral() and runPlanned() before errors get back the file's hl7('PATH') texts.
  Result<MappingOutput> runUnrestored(std::string_view input,
                                      const fhirpath::Environment& variables) const;
  Result<MappingOutput> runGeneralUnrestored(std::string_view input,
                                             const fhirpath::Environment& variables) const;
  Result<MappingOutput> runPlannedUnrestored(std::string_view input,
                                             const fhirpath::Environment& variables) const;
  std::unique_ptr<Impl> impl_;
};

}  // namespace switchboard::mapping
