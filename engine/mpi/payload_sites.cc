// Parsing a payload while noting the mpi stage's edit sites. Thread-safety: see payload_sites.h.
#include "engine/mpi/payload_sites.h"

#include <algorithm>
#include <tuple>

#include <rapidjson/encodedstream.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace switchboard::mpi {
namespace {

using Stream = rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream>;

// What a container of the payload is to the stage.
enum class Role {
  kOther,
  kRoot,        // the payload: a Bundle, or a Patient itself
  kEntries,     // the root's (first) "entry" array
  kEntry,       // an element of it
  kResource,    // an entry's "resource"
  kIdentifier,  // the "identifier" array of the root or of a resource
  kRequest,     // an entry's "request"
};

// SAX handler that builds the DOM through the document's own handler and notes, from the
// stream's position at each event, where the containers the stage edits end. The reader calls
// EndObject / EndArray just after taking the closing character, and String just after the
// closing quote.
class SiteFinder {
 public:
  SiteFinder(rapidjson::Document& doc, const Stream& is, std::string_view text, PayloadSites& sites)
      : doc_(doc), is_(is), text_(text), sites_(sites) {}

  bool Null() { return scalar() && doc_.Null(); }
  bool Bool(bool b) { return scalar() && doc_.Bool(b); }
  bool Int(int i) { return scalar() && doc_.Int(i); }
  bool Uint(unsigned i) { return scalar() && doc_.Uint(i); }
  bool Int64(int64_t i) { return scalar() && doc_.Int64(i); }
  bool Uint64(uint64_t i) { return scalar() && doc_.Uint64(i); }
  bool Double(double d) { return scalar() && doc_.Double(d); }
  bool RawNumber(const char* s, rapidjson::SizeType n, bool copy) {
    return scalar() && doc_.RawNumber(s, n, copy);
  }
  bool String(const char* s, rapidjson::SizeType n, bool copy) {
    if (const Frame* f = top(); f && f->role == Role::kRequest && key_ == Named::kIfNoneExist &&
                                f->site->ifNoneExistKeys == 1) {
      f->site->ifNoneExistBegin = valueBegin_;
      f->site->ifNoneExistEnd = is_.Tell();
    }
    return scalar() && doc_.String(s, n, copy);
  }
  bool StartObject() {
    open(true);
    return doc_.StartObject();
  }
  bool Key(const char* s, rapidjson::SizeType n, bool copy) {
    const std::string_view k(s, n);
    key_ = Named::kOther;
    Frame& f = stack_.back();
    if ((f.role == Role::kRoot || f.role == Role::kResource) && k == "identifier") {
      key_ = Named::kIdentifier;
      ++f.site->identifierKeys;
    } else if (f.role == Role::kRoot && k == "entry") {
      key_ = Named::kEntry;
      ++sites_.entryKeys;
    } else if (f.role == Role::kEntry && k == "resource") {
      key_ = Named::kResource;
      ++f.site->resourceKeys;
    } else if (f.role == Role::kEntry && k == "request") {
      key_ = Named::kRequest;
      ++f.site->requestKeys;
    } else if (f.role == Role::kRequest && k == "ifNoneExist") {
      key_ = Named::kIfNoneExist;
      ++f.site->ifNoneExistKeys;
      // The value starts after optional spaces, the colon and optional spaces.
      std::size_t p = is_.Tell();
      while (p < text_.size() && text_[p] != ':') ++p;
      p = text_.find_first_not_of(" \t\n\r", p + 1);
      valueBegin_ = p == std::string_view::npos ? kNoOffset : p;
    }
    return doc_.Key(s, n, copy);
  }
  bool EndObject(rapidjson::SizeType members) {
    close(members);
    return doc_.EndObject(members);
  }
  bool StartArray() {
    open(false);
    return doc_.StartArray();
  }
  bool EndArray(rapidjson::SizeType items) {
    close(items);
    return doc_.EndArray(items);
  }

 private:
  enum class Named { kOther, kIdentifier, kEntry, kResource, kRequest, kIfNoneExist };
  struct Frame {
    Role role;
    PatientSite* site;  // the site the container belongs to (null for kOther, kEntries)
  };

  const Frame* top() const { return stack_.empty() ? nullptr : &stack_.back(); }

  // A value begins in the current container: a new entry's site when that is the entry array.
  // Returns the site and role the value takes when it is a container.
  std::pair<Role, PatientSite*> roleOfValue(bool object) {
    if (stack_.empty()) return {Role::kRoot, &sites_.root};
    const Frame& f = stack_.back();
    const Named key = key_;
    key_ = Named::kOther;
    switch (f.role) {
      case Role::kRoot:
        if (key == Named::kIdentifier && f.site->identifierKeys == 1) {
          return {object ? Role::kOther : Role::kIdentifier, f.site};
        }
        if (key == Named::kEntry && sites_.entryKeys == 1 && !object)
          return {Role::kEntries, nullptr};
        break;
      case Role::kResource:
        if (key == Named::kIdentifier && f.site->identifierKeys == 1) {
          return {object ? Role::kOther : Role::kIdentifier, f.site};
        }
        break;
      case Role::kEntries:
        sites_.entries.emplace_back();
        return {object ? Role::kEntry : Role::kOther, &sites_.entries.back()};
      case Role::kEntry:
        if (key == Named::kResource && f.site->resourceKeys == 1 && object) {
          return {Role::kResource, f.site};
        }
        if (key == Named::kRequest && f.site->requestKeys == 1 && object) {
          f.site->requestIsObject = true;
          return {Role::kRequest, f.site};
        }
        break;
      default:
        break;
    }
    return {Role::kOther, nullptr};
  }

  bool scalar() {
    if (!stack_.empty()) roleOfValue(false);
    return true;
  }
  void open(bool object) {
    auto [role, site] = roleOfValue(object);
    if (role == Role::kIdentifier) site->identifierIsArray = true;
    // A root that is an array or a scalar is not FHIR JSON: the stage refuses it anyway.
    stack_.push_back({role, site});
  }
  void close(rapidjson::SizeType count) {
    const Frame f = stack_.back();
    stack_.pop_back();
    key_ = Named::kOther;
    const std::size_t at = is_.Tell() - 1;  // the closing character
    switch (f.role) {
      case Role::kRoot:
      case Role::kResource:
        f.site->resourceEnd = at;
        f.site->resourceMembers = count;
        break;
      case Role::kIdentifier:
        f.site->identifierEnd = at;
        f.site->identifierItems = count;
        break;
      case Role::kRequest:
        f.site->requestEnd = at;
        f.site->requestMembers = count;
        break;
      default:
        break;
    }
  }

  rapidjson::Document& doc_;
  const Stream& is_;
  std::string_view text_;
  PayloadSites& sites_;
  std::vector<Frame> stack_;
  Named key_ = Named::kOther;  // the role of the last key read in the current object
  std::size_t valueBegin_ = kNoOffset;
};

// Runs the reader for Document::Populate, which then takes the value built.
struct Generator {
  std::string_view text;
  PayloadSites& sites;
  rapidjson::ParseResult result;
  bool operator()(rapidjson::Document& handlerDoc) {
    rapidjson::MemoryStream ms(text.data(), text.size());
    Stream is(ms);
    SiteFinder finder(handlerDoc, is, text, sites);
    rapidjson::Reader reader;
    result = reader.Parse<rapidjson::kParseDefaultFlags>(is, finder);
    return !result.IsError();
  }
};

std::string quoted(std::string_view s) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
  return {sb.GetString(), sb.GetSize()};
}

}  // namespace

rapidjson::ParseResult parseWithSites(std::string_view text, rapidjson::Document& doc,
                                      PayloadSites& sites) {
  sites = PayloadSites{};
  Generator g{text, sites, {}};
  doc.Populate(g);
  if (g.result.IsError()) doc.SetNull();
  return g.result;
}

std::optional<std::string> stampIdentifier(std::string_view text, const PatientSite& site,
                                           bool editRequest, std::string_view system,
                                           std::string_view value, std::string_view condition) {
  if (site.resourceEnd == kNoOffset || site.identifierKeys > 1 || site.resourceKeys > 1 ||
      site.requestKeys > 1 || (site.identifierKeys == 1 && !site.identifierIsArray)) {
    return std::nullopt;
  }
  // (offset, bytes replaced, new text), applied in the order of the text.
  std::vector<std::tuple<std::size_t, std::size_t, std::string>> edits;
  const std::string identifier =
      "{\"system\":" + quoted(system) + ",\"value\":" + quoted(value) + "}";
  if (site.identifierKeys == 1) {
    edits.emplace_back(site.identifierEnd, 0, (site.identifierItems > 0 ? "," : "") + identifier);
  } else {
    edits.emplace_back(
        site.resourceEnd, 0,
        std::string(site.resourceMembers > 0 ? "," : "") + "\"identifier\":[" + identifier + "]");
  }
  if (editRequest) {
    if (!site.requestIsObject || site.requestEnd == kNoOffset || site.ifNoneExistKeys > 1) {
      return std::nullopt;
    }
    if (site.ifNoneExistKeys == 1) {
      if (site.ifNoneExistBegin == kNoOffset || site.ifNoneExistEnd == kNoOffset) {
        return std::nullopt;  // not a string
      }
      edits.emplace_back(site.ifNoneExistBegin, site.ifNoneExistEnd - site.ifNoneExistBegin,
                         quoted(condition));
    } else {
      edits.emplace_back(
          site.requestEnd, 0,
          (site.requestMembers > 0 ? ",\"ifNoneExist\":" : "\"ifNoneExist\":") + quoted(condition));
    }
  }
  std::sort(edits.begin(), edits.end());
  std::string out;
  std::size_t added = 0;
  for (const auto& [at, erase, insert] : edits) added += insert.size();
  out.reserve(text.size() + added);
  std::size_t from = 0;
  for (const auto& [at, erase, insert] : edits) {
    out.append(text.substr(from, at - from));
    out += insert;
    from = at + erase;
  }
  out.append(text.substr(from));
  return out;
}

}  // namespace switchboard::mpi
