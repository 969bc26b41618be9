// An HL7 v2 message in ER7 form: parse, serialise byte for byte, read and set values by path
// (see docs/hl7v2.md), and the MSH facts (type, trigger, structure, control id, version).
// Thread-safety: a Message is a plain value; const methods may run concurrently, mutation may not.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "engine/core/error.h"
#include "hl7v2/delimiters.h"

namespace switchboard::hl7v2 {

// The tree holds values exactly as written (escape sequences undecoded). After parsing, every
// level has at least one element, so an empty field is one repetition of one component of one
// empty subcomponent; joining the levels with the message's delimiters gives the input back.
struct Component {
  std::vector<std::string> subcomponents;
};
struct Repetition {
  std::vector<Component> components;
};
struct Field {
  std::vector<Repetition> repetitions;
};

// fields[i] is field i+1. In MSH, fields[0] is MSH-1 (the field separator) and fields[1] is
// MSH-2 (the encoding characters), each kept as one unsplit subcomponent, so MSH-n is fields[n-1]
// in every segment. A segment with no fields at all (`PV1` alone) has an empty vector.
struct Segment {
  std::string id;
  std::vector<Field> fields;
};

// Limits that keep hostile input and paths bounded.
inline constexpr size_t kMaxPathIndex = 100000;  // largest segment/field/rep/component number

// Bounds on what parse() accepts. The tree costs roughly 50-100 bytes per element, so a message
// made only of delimiters would otherwise cost ~100x its size in memory.
struct ParseLimits {
  size_t maxBytes = 64u << 20;     // whole message
  size_t maxElements = 2'000'000;  // a field separator counts 4 (field, repetition, component,
                                   // subcomponent), a repetition separator 3, a component
                                   // separator 2, a subcomponent separator 1, a segment 4
};

class Message {
 public:
  // Parses one message. Segments end with CR (0x0D); the last may or may not, and that is kept.
  // Errors (kStructure) name the segment number and carry "byte N" (0-based offset into `er7`)
  // as their location: empty input, no MSH, MSH too short, bad MSH-2, an empty segment, a
  // segment id that is not three upper-case letters or digits, a second MSH; kTooLong when the
  // message passes a limit (location: the byte where it did).
  static Result<Message> parse(std::string_view er7, const ParseLimits& limits = {});

  // A message holding only `MSH` + MSH-1 + MSH-2 built from `d` (which must declare at least
  // a component separator), ended by CR.
  static Message create(const Delimiters& d = {});

  // ER7 text; equal byte for byte to the parsed input when nothing was changed.
  std::string toEr7() const;

  const Delimiters& delimiters() const { return delimiters_; }
  // Direct access to the tree. A caller that edits it keeps the shape parse() gives (MSH first
  // with MSH-1 and MSH-2 as single values, no level empty, no delimiter or CR inside a value,
  // no element beyond a level the message declares no delimiter for); the path setters do so.
  const std::vector<Segment>& segments() const { return segments_; }
  std::vector<Segment>& segments() { return segments_; }
  // Whether the text ends with a CR after the last segment.
  bool endsWithTerminator() const { return endsWithTerminator_; }
  void setEndsWithTerminator(bool v) { endsWithTerminator_ = v; }

  // Number of segments with this id, and the occurrence-th (1-based) of them or nullptr.
  size_t count(std::string_view segmentId) const;
  const Segment* segment(std::string_view segmentId, size_t occurrence = 1) const;

  // Path reads (syntax in path.h). getRaw returns the stored ER7 text of the element (with its
  // inner delimiters); get returns it with escape sequences decoded. An element that is not
  // there reads as "". Fails only for a malformed path.
  Result<std::string> getRaw(std::string_view path) const;
  Result<std::string> get(std::string_view path) const;

  // Path writes. set encodes `text` (escape.h) and stores it as the whole element: a field path
  // without repetition replaces the field, with (n) the n-th repetition, and so on down.
  // setRaw stores ER7 text, splitting it on the delimiters of the element's level (a field may
  // hold repetitions and components; a subcomponent may hold no delimiter). Missing segments
  // are appended at the end of the message, missing fields, repetitions, components and
  // subcomponents are created empty. MSH-1 and MSH-2 cannot be set (kNotSupported).
  Result<void> set(std::string_view path, std::string_view text);
  Result<void> setRaw(std::string_view path, std::string_view er7);

  // MSH facts, decoded; "" when absent.
  std::string messageCode() const;   // MSH-9.1, e.g. "ADT"
  std::string triggerEvent() const;  // MSH-9.2, e.g. "A04"
  // MSH-9.3 when present, else the v2.5.1 structure of code^trigger for the triggers listed in
  // docs/hl7v2.md (ADT A01/A04/A08 -> ADT_A01, A28/A31 -> ADT_A05, A40 -> ADT_A39, SIU
  // S12-S15/S26 -> SIU_S12, ACK -> ACK), else "".
  std::string messageStructure() const;
  std::string controlId() const;  // MSH-10
  std::string version() const;    // MSH-12.1

 private:
  Message() = default;  // always built by parse() or create(), so MSH is always there

  Delimiters delimiters_;
  std::vector<Segment> segments_;
  bool endsWithTerminator_ = true;
};

// `text` with every CR LF and lone LF turned into CR, for senders that end segments with line
// feeds (files edited by hand, some HTTP bodies). Parsing the result is no longer byte for byte
// with the original text; LF inside values (which HL7 writes as \X0A\) is changed too.
std::string normaliseSegmentEnds(std::string_view text);

// Splitting and joining one level of ER7 with delimiters `d` (no field separators inside).
Field parseField(std::string_view raw, const Delimiters& d);
Repetition parseRepetition(std::string_view raw, const Delimiters& d);
Component parseComponent(std::string_view raw, const Delimiters& d);
void appendField(std::string& out, const Field& f, const Delimiters& d);
void appendRepetition(std::string& out, const Repetition& r, const Delimiters& d);
void appendComponent(std::string& out, const Component& c, const Delimiters& d);
// ER7 of one segment (no terminator).
void appendSegment(std::string& out, const Segment& s, const Delimiters& d);

// An empty field (one repetition of one component of one empty subcomponent).
Field emptyField();

}  // namespace switchboard::hl7v2
