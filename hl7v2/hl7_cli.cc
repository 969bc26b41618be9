// `switchboard hl7 ...` commands: see hl7_cli.h.
#include "hl7v2/hl7_cli.h"

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "hl7v2/escape.h"

namespace switchboard::hl7v2 {
namespace {

void jsonString(std::string& out, std::string_view s) {
  out.push_back('"');
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (u < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", u);
          out += buf;
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

void jsonComponent(std::string& out, const Component& c, const Delimiters& d) {
  if (c.subcomponents.size() == 1) {
    jsonString(out, decode(c.subcomponents[0], d));
    return;
  }
  out.push_back('[');
  for (size_t i = 0; i < c.subcomponents.size(); ++i) {
    if (i > 0) out.push_back(',');
    jsonString(out, decode(c.subcomponents[i], d));
  }
  out.push_back(']');
}

void jsonRepetition(std::string& out, const Repetition& r, const Delimiters& d) {
  if (r.components.size() == 1) {
    jsonComponent(out, r.components[0], d);
    return;
  }
  out.push_back('[');
  for (size_t i = 0; i < r.components.size(); ++i) {
    if (i > 0) out.push_back(',');
    jsonComponent(out, r.components[i], d);
  }
  out.push_back(']');
}

// A field is a string when it is one plain value, else the array of its repetitions.
void jsonField(std::string& out, const Field& f, const Delimiters& d) {
  const auto& reps = f.repetitions;
  if (reps.size() == 1 && reps[0].components.size() == 1 &&
      reps[0].components[0].subcomponents.size() == 1) {
    jsonString(out, decode(reps[0].components[0].subcomponents[0], d));
    return;
  }
  out.push_back('[');
  for (size_t i = 0; i < reps.size(); ++i) {
    if (i > 0) out.push_back(',');
    jsonRepetition(out, reps[i], d);
  }
  out.push_back(']');
}

Result<std::string> readFile(const char* path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(ErrorCode::kNotFound, std::string("cannot read ") + path);
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return fail(ErrorCode::kNotFound, std::string("cannot read ") + path);
  return text.str();
}

}  // namespace

std::string toJson(const Message& m) {
  const Delimiters& d = m.delimiters();
  std::string out = "{\"type\":";
  jsonString(out, m.messageCode());
  out += ",\"trigger\":";
  jsonString(out, m.triggerEvent());
  out += ",\"structure\":";
  jsonString(out, m.messageStructure());
  out += ",\"controlId\":";
  jsonString(out, m.controlId());
  out += ",\"version\":";
  jsonString(out, m.version());
  out += ",\"delimiters\":";
  jsonString(out, std::string(1, static_cast<char>(d.field)) + d.encodingCharacters());
  out += ",\"segments\":[";
  for (size_t s = 0; s < m.segments().size(); ++s) {
    const Segment& seg = m.segments()[s];
    if (s > 0) out.push_back(',');
    out += "{\"id\":";
    jsonString(out, seg.id);
    out += ",\"fields\":[";
    for (size_t f = 0; f < seg.fields.size(); ++f) {
      if (f > 0) out.push_back(',');
      if (seg.id == "MSH" && f < 2) {
        jsonString(out, seg.fields[f].repetitions[0].components[0].subcomponents[0]);
        continue;
      }
      jsonField(out, seg.fields[f], d);
    }
    out += "]}";
  }
  out += "]}";
  return out;
}

int runHl7Command(int argc, char** argv) {
  const char* usage =
      "usage: switchboard hl7 parse FILE [--json|--er7]\n"
      "       switchboard hl7 check FILE\n";
  if (argc < 3) {
    std::cerr << usage;
    return 2;
  }
  const std::string sub = argv[1];
  const char* file = argv[2];
  std::string format = "--json";
  if (sub == "parse" && argc == 4) {
    format = argv[3];
    if (format != "--json" && format != "--er7") {
      std::cerr << usage;
      return 2;
    }
  } else if (!((sub == "parse" || sub == "check") && argc == 3)) {
    std::cerr << usage;
    return 2;
  }
  auto text = readFile(file);
  if (!text) {
    std::cerr << "hl7: " << text.error().message << "\n";
    return 1;
  }
  auto m = Message::parse(*text);
  if (!m) {
    std::cerr << "hl7: " << file << ": " << m.error().message << " (" << m.error().location
              << ")\n";
    return 1;
  }
  if (sub == "parse") {
    if (format == "--er7") {
      std::string er7 = m->toEr7();
      for (char& c : er7) {
        if (c == '\r') c = '\n';
      }
      std::cout << er7 << (m->endsWithTerminator() ? "" : "\n");
    } else {
      std::cout << toJson(*m) << "\n";
    }
    return 0;
  }
  // check: structure parsed; report the MSH fields a receiver needs.
  int problems = 0;
  for (const char* required : {"MSH-7", "MSH-9", "MSH-10", "MSH-11", "MSH-12"}) {
    auto v = m->getRaw(required);
    if (v && v->empty()) {
      std::cerr << "hl7: " << file << ": " << required << " is empty (required)\n";
      ++problems;
    }
  }
  const bool roundTrips = m->toEr7() == *text;
  if (!roundTrips) {
    std::cerr << "hl7: " << file << ": serialising does not give the input back\n";
    ++problems;
  }
  std::string type = m->messageCode().empty() ? "no message type" : m->messageCode();
  if (!m->triggerEvent().empty()) type += "^" + m->triggerEvent();
  if (!m->messageStructure().empty()) type += " (" + m->messageStructure() + ")";
  std::cout << file << ": " << type << ", control id '" << m->controlId() << "', version '"
            << m->version() << "', " << m->segments().size() << " segments"
            << (problems == 0 ? ", ok" : "") << "\n";
  return problems == 0 ? 0 : 1;
}

}  // namespace switchboard::hl7v2
