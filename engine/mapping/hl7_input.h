// HL7 v2 in mapping files (docs/mapping-language.md "HL7 v2 input" and "HL7 v2 output"): the JSON
// model an ER7 message is mapped from, the `hl7('PID-5.1')` path shorthand rewritten into FHIRPath
// over that model, and the conversions between HL7 DTM and FHIR date/dateTime/instant.
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "engine/core/error.h"

namespace switchboard::mapping {

// The JSON text of the model of one ER7 message (segment ends CR; LF and CR LF are accepted and
// turned into CR). Errors: the hl7v2 parse error (kStructure or kTooLong, location "byte N").
//   { "messageType": "ADT", "trigger": "A04", "structure": "ADT_A01", "controlId": "...",
//     "version": "2.5.1",
//     "PID": [ { "F3": [ { "value": "MRN1^^^HOSP^MR", "C1": "MRN1", "C4": "HOSP", "C5": "MR" } ],
//               ... } ], "OBX": [ {...}, {...} ], ... }
// Each segment id holds its segments in message order; a segment holds F<n> for each field with
// a value; a field is the array of its repetitions (an empty repetition stays as {} so positions
// hold); a repetition holds `value` (its whole text) and C<n> for each component with a value; a
// component with subcomponents also has C<n>S<m> for each of them ("" when empty). Every text is
// decoded (escape sequences resolved); `""` (the HL7 null) counts as no value. MSH-1 and MSH-2
// are as written.
Result<std::string> hl7InputJson(std::string_view er7);

// Rewrites every `hl7('PATH')` in a FHIRPath expression into navigation of the model:
//   hl7('PID-5.1')      -> PID.first().F5.first().C1
//   hl7('PID-3')        -> PID.first().F3.value          (every repetition's text)
//   hl7('OBX[2]-5(2).1') -> OBX[1].F5[1].C1
//   hl7('PID-3.4.2')    -> PID.first().F3.first().C4S2
//   %obx.hl7('OBX-5.1') -> %obx.F5.first().C1            (after a '.': relative to that segment)
//   hl7('PID')          -> PID.first()
// Text inside other string literals, backticks and comments is left alone. Errors (kInvalid,
// naming the path): a malformed path, a relative path with an occurrence, hl7() with anything but
// one string literal. Returns nullopt when the text has no hl7( at all.
Result<std::optional<std::string>> rewriteHl7Paths(std::string_view expression);

// HL7 DTM (YYYY[MM[DD[HH[MM[SS[.S...]]]]]][+/-ZZZZ]) as FHIR:
//   kDate:     YYYY, YYYY-MM or YYYY-MM-DD (time and offset dropped)
//   kDateTime: a date as kDate when there is no time; else YYYY-MM-DDThh:mm:ss[.fff]+hh:mm, the
//              offset from the value, else from `zone` (an IANA name) for that local time
//   kInstant:  like kDateTime, but the time is required
// Errors: kValue for text that is not a DTM or not a real date/time (with what is wrong),
// kRequired when a time has no offset and no zone is given, the zone's error when it does not
// load.
enum class FhirTemporal { kDate, kDateTime, kInstant };
Result<std::string> hl7ToFhirDate(std::string_view dtm, FhirTemporal as, std::string_view zone,
                                  const std::string& zoneinfoRoot);

// FHIR date, dateTime or instant ("2026-02-12T10:00:00-05:00", "2026-02-12", "2026-02-12T10:00Z")
// as HL7 DTM ("20260212100000-0500", "20260212"); fractions of a second are kept up to four
// digits. kValue for text that is not one.
Result<std::string> fhirToHl7Date(std::string_view fhir);

}  // namespace switchboard::mapping
