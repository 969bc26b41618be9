// Runs the official FHIRPath R4 test suite (tests/data/fhirpath-r4) against the engine. Every
// test must pass unless tests/fhirpath/unsupported.txt lists it with a reason.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "engine/fhirpath/fhirpath.h"

using namespace switchboard::fhirpath;
using switchboard::Result;

namespace {

std::string sourceDir() {
  const char* d = std::getenv("SWITCHBOARD_SOURCE_DIR");
  return d ? d : ".";
}

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string prop(xmlNode* n, const char* name) {
  xmlChar* v = xmlGetProp(n, reinterpret_cast<const xmlChar*>(name));
  if (!v) return {};
  std::string s = reinterpret_cast<const char*>(v);
  xmlFree(v);
  return s;
}

std::string text(xmlNode* n) {
  xmlChar* v = xmlNodeGetContent(n);
  std::string s = v ? reinterpret_cast<const char*>(v) : "";
  xmlFree(v);
  return s;
}

struct Expected {
  std::string type, value;
};

struct Case {
  std::string name, group, input, expression, invalid;
  bool predicate = false, ordered = true, checkOrdered = false;
  std::vector<Expected> outputs;
};

std::vector<Case> loadSuite(const std::string& path) {
  std::vector<Case> cases;
  std::string xml = readFile(path);
  xmlDoc* doc = xmlReadMemory(xml.data(), static_cast<int>(xml.size()), "suite.xml", nullptr, 0);
  BOOST_REQUIRE_MESSAGE(doc, "cannot parse " << path);
  std::map<std::string, int> seen;
  for (xmlNode* g = xmlDocGetRootElement(doc)->children; g; g = g->next) {
    if (g->type != XML_ELEMENT_NODE) continue;
    std::string group = prop(g, "name");
    int index = 0;
    for (xmlNode* t = g->children; t; t = t->next) {
      if (t->type != XML_ELEMENT_NODE ||
          std::string(reinterpret_cast<const char*>(t->name)) != "test")
        continue;
      ++index;
      Case c;
      c.group = group;
      c.name = prop(t, "name");
      if (c.name.empty()) c.name = group + "#" + std::to_string(index);
      if (int n = ++seen[c.name]; n > 1) c.name += "#" + std::to_string(n);
      c.input = prop(t, "inputfile");
      c.predicate = prop(t, "predicate") == "true";
      c.ordered = prop(t, "ordered") != "false";
      c.checkOrdered = prop(t, "checkOrderedFunctions") == "true";
      for (xmlNode* e = t->children; e; e = e->next) {
        if (e->type != XML_ELEMENT_NODE) continue;
        std::string en = reinterpret_cast<const char*>(e->name);
        if (en == "expression") {
          c.expression = text(e);
          c.invalid = prop(e, "invalid");
        } else if (en == "output") {
          c.outputs.push_back({prop(e, "type"), text(e)});
        }
      }
      cases.push_back(std::move(c));
    }
  }
  xmlFreeDoc(doc);
  return cases;
}

std::map<std::string, std::string> loadSkips(const std::string& path) {
  std::map<std::string, std::string> skips;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    auto hash = line.find('#');
    std::string reason = hash == std::string::npos ? "" : line.substr(hash + 1);
    std::string name = line.substr(0, hash);
    name.erase(0, name.find_first_not_of(" \t"));
    name.erase(name.find_last_not_of(" \t\r") + 1);
    if (!name.empty()) skips[name] = reason;
  }
  return skips;
}

// The type name the suite uses for an item.
std::string suiteType(const Node& n) {
  if (n.isElement()) return n.typeName();
  std::string t = n.typeName();
  if (t == "Quantity") return t;
  t[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(t[0])));
  return t;
}

// The suite's text form of an item: literals as written in FHIRPath (@dates, 'units').
std::string suiteValue(const Node& n) {
  auto v = n.toSystemValue();
  if (!v) return "<" + n.typeName() + ">";
  if (v->kind() == Node::Kind::kTemporal) {
    const Temporal& t = v->temporalValue();
    return (t.kind == TemporalKind::kTime ? "@T" : "@") + t.toString();
  }
  if (v->kind() == Node::Kind::kQuantity) {
    const Quantity& q = v->quantityValue();
    return q.value.toString() + " '" + q.unit + "'";
  }
  return toFhirPathString(*v).value_or("?");
}

bool valueMatches(const Node& n, const Expected& e) {
  if (!e.type.empty()) {
    std::string t = suiteType(n);
    if (t != e.type) return false;
  }
  std::string got = suiteValue(n);
  if (got == e.value) return true;
  auto v = n.toSystemValue();
  if (v && (v->kind() == Node::Kind::kDecimal || v->kind() == Node::Kind::kInteger)) {
    auto a = Decimal::parse(got), b = Decimal::parse(e.value);
    return a && b && a->compare(*b) == 0;
  }
  if (v && v->kind() == Node::Kind::kQuantity) {
    // "1 '1'" vs "1.0 '1'": compare value and unit separately.
    auto sp = e.value.find(' ');
    if (sp == std::string::npos) return false;
    auto b = Decimal::parse(e.value.substr(0, sp));
    std::string unit = e.value.substr(sp + 1);
    if (unit.size() >= 2 && unit.front() == '\'') unit = unit.substr(1, unit.size() - 2);
    return b && v->quantityValue().value.compare(*b) == 0 && v->quantityValue().unit == unit;
  }
  return false;
}

// Runs one case; returns empty string on pass, else why it failed.
// Reads an input file. With `viaJson`, XML inputs are converted to JSON text and read back
// through the JSON parser, so the suite also covers the JSON reading of the same resources.
Result<Node> loadInput(const std::string& name, bool viaJson) {
  std::string data = readFile(sourceDir() + "/tests/data/fhirpath-r4/input/" + name);
  if (!viaJson || !name.ends_with(".xml")) return parseResource(data);
  auto doc = xmlToJson(data);
  if (!doc) return std::unexpected(doc.error());
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  (*doc)->Accept(w);
  return parseJsonResource(std::string_view(buf.GetString(), buf.GetSize()));
}

std::string runCase(const Case& c, std::map<std::string, Result<Node>>& inputs, bool viaJson) {
  Node focus;
  if (!c.input.empty()) {
    auto it = inputs.find(c.input);
    if (it == inputs.end()) it = inputs.emplace(c.input, loadInput(c.input, viaJson)).first;
    if (!it->second) return "input " + c.input + ": " + it->second.error().message;
    focus = *it->second;
  }
  CompileOptions options;
  options.checkOrderedFunctions = c.checkOrdered;
  auto expr = compile(c.expression, options);
  if (!expr) {
    if (!c.invalid.empty()) return {};
    return "compile error: " + expr.error().message;
  }
  Environment env;
  if (c.invalid == "syntax") return "expected a syntax error from compile()";
  auto result = evaluate(*expr, focus, env);
  if (!result) {
    // Semantic and execution errors: this engine types dynamically, so either phase may report.
    if (!c.invalid.empty()) return {};
    return "evaluation error: " + result.error().message;
  }
  if (!c.invalid.empty())
    return "expected an error (" + c.invalid + "), got " + toJsonString(*result);
  Collection got = *result;
  if (c.predicate) got = Collection{Node::boolean(!got.empty())};
  std::ostringstream desc;
  desc << "got [";
  for (std::size_t i = 0; i < got.size(); ++i)
    desc << (i ? ", " : "") << suiteType(got[i]) << ":" << suiteValue(got[i]);
  desc << "], expected [";
  for (std::size_t i = 0; i < c.outputs.size(); ++i)
    desc << (i ? ", " : "") << c.outputs[i].type << ":" << c.outputs[i].value;
  desc << "]";
  if (got.size() != c.outputs.size()) return desc.str();
  if (c.ordered) {
    for (std::size_t i = 0; i < got.size(); ++i)
      if (!valueMatches(got[i], c.outputs[i])) return desc.str();
  } else {
    std::vector<bool> used(got.size(), false);
    for (const Expected& e : c.outputs) {
      bool found = false;
      for (std::size_t i = 0; i < got.size() && !found; ++i)
        if (!used[i] && valueMatches(got[i], e)) used[i] = found = true;
      if (!found) return desc.str();
    }
  }
  return {};
}

void runSuite(bool viaJson) {
  auto cases = loadSuite(sourceDir() + "/tests/data/fhirpath-r4/tests-fhir-r4.xml");
  auto skips = loadSkips(sourceDir() + "/tests/fhirpath/unsupported.txt");
  BOOST_REQUIRE_GT(cases.size(), 900u);
  std::map<std::string, Result<Node>> inputs;
  int passed = 0, failedUnlisted = 0, skippedFailing = 0;
  std::vector<std::string> skippedPassing;
  for (const Case& c : cases) {
    std::string why = runCase(c, inputs, viaJson);
    bool skipped = skips.contains(c.name);
    if (why.empty()) {
      ++passed;
      if (skipped) skippedPassing.push_back(c.name);
      continue;
    }
    if (skipped) {
      ++skippedFailing;
      continue;
    }
    ++failedUnlisted;
    BOOST_ERROR(c.name << " [" << c.group << "] `" << c.expression << "`: " << why);
  }
  std::cout << "FHIRPath R4 conformance" << (viaJson ? " (XML inputs read as JSON)" : "") << ": "
            << passed << " of " << cases.size() << " tests pass (" << skippedFailing
            << " listed as unsupported, " << failedUnlisted << " unexpected failures)\n";
  for (const auto& name : skippedPassing)
    std::cout << "note: " << name << " is listed in unsupported.txt but passes\n";
  BOOST_CHECK_EQUAL(failedUnlisted, 0);
}

}  // namespace

BOOST_AUTO_TEST_CASE(official_r4_suite) { runSuite(false); }

BOOST_AUTO_TEST_CASE(official_r4_suite_inputs_as_json) { runSuite(true); }
