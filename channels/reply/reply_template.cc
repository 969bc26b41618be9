// Reply template parsing and rendering; see reply_template.h.
#include "channels/reply/reply_template.h"

#include <algorithm>
#include <cctype>

namespace switchboard::channels::reply {

namespace {

using Part = ReplyTemplate::Part;

std::string_view trim(std::string_view s) {
  while (!s.empty() &&
         (s.front() == ' ' || s.front() == '\t' || s.front() == '\n' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

bool blanks(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == ' ' || c == '\t' || c == '\r'; });
}

int lineAt(std::string_view text, std::size_t pos) {
  return 1 +
         static_cast<int>(std::count(text.begin(), text.begin() + static_cast<long>(pos), '\n'));
}

}  // namespace

std::string collectionText(const fhirpath::Collection& items) {
  std::string out;
  bool first = true;
  for (const auto& item : items) {
    auto text = fhirpath::toFhirPathString(item);
    if (!text) continue;
    if (!first) out += ", ";
    out += *text;
    first = false;
  }
  return out;
}

bool collectionTruth(const fhirpath::Collection& items) {
  if (items.empty()) return false;
  if (items.size() == 1) {
    auto value = items.front().toSystemValue();
    if (value && value->kind() == fhirpath::Node::Kind::kBoolean) return value->booleanValue();
  }
  return true;
}

std::vector<std::string> referencedVariables(std::string_view e) {
  std::vector<std::string> names;
  for (std::size_t i = 0; i < e.size(); ++i) {
    if (e[i] == '\'') {
      for (++i; i < e.size() && e[i] != '\''; ++i) {
        if (e[i] == '\\') ++i;
      }
      continue;
    }
    if (e[i] != '%' || i + 1 >= e.size()) continue;
    std::size_t j = i + 1;
    std::string name;
    if (e[j] == '`') {
      std::size_t end = e.find('`', j + 1);
      if (end == std::string_view::npos) break;
      name = std::string(e.substr(j + 1, end - j - 1));
      i = end;
    } else {
      while (j < e.size() && (std::isalnum(static_cast<unsigned char>(e[j])) || e[j] == '_')) ++j;
      name = std::string(e.substr(i + 1, j - i - 1));
      i = j - 1;
    }
    if (!name.empty()) names.push_back(std::move(name));
  }
  return names;
}

Result<ReplyTemplate> ReplyTemplate::parse(std::string_view text, std::string source) {
  ReplyTemplate tpl;
  tpl.source_ = std::move(source);
  PlanMemo memo;
  auto error = [&](std::size_t pos, const std::string& what) {
    return fail(ErrorCode::kInvalid,
                tpl.source_ + ": line " + std::to_string(lineAt(text, pos)) + ": " + what);
  };

  // Open {{#if}} blocks: the part and whether we are in its {{else}} branch.
  struct Open {
    Part part;
    bool inElse = false;
    std::size_t pos = 0;
  };
  std::vector<Open> open;
  auto target = [&]() -> std::vector<Part>& {
    if (open.empty()) return tpl.parts_;
    return open.back().inElse ? open.back().part.otherwise : open.back().part.then;
  };
  auto addText = [&](std::string_view literal, std::size_t pos) {
    if (literal.empty()) return;
    auto& parts = target();
    if (!parts.empty() && parts.back().kind == Part::Kind::kText) {
      parts.back().text.append(literal);
      return;
    }
    Part p;
    p.kind = Part::Kind::kText;
    p.text = std::string(literal);
    p.line = lineAt(text, pos);
    parts.push_back(std::move(p));
  };

  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t openAt = text.find("{{", pos);
    if (openAt == std::string_view::npos) {
      addText(text.substr(pos), pos);
      break;
    }
    const std::size_t closeAt = text.find("}}", openAt + 2);
    if (closeAt == std::string_view::npos) return error(openAt, "\"{{\" without a closing \"}}\"");
    std::string_view inner = trim(text.substr(openAt + 2, closeAt - openAt - 2));
    std::size_t next = closeAt + 2;
    const bool isBlock = inner.starts_with('#') || inner.starts_with('/') ||
                         inner.starts_with('!') || inner == "else";
    std::size_t literalEnd = openAt;
    if (isBlock) {
      // Standalone tag: only blanks between the previous newline and the tag, and between the
      // tag and the next newline. Then the whole line goes.
      const std::size_t nl = openAt == 0 ? std::string_view::npos : text.rfind('\n', openAt - 1);
      const std::size_t lineStart = nl == std::string_view::npos ? 0 : nl + 1;
      const std::size_t lineEnd = text.find('\n', next);
      const std::size_t restEnd = lineEnd == std::string_view::npos ? text.size() : lineEnd;
      const bool blankBefore =
          lineStart >= pos && blanks(text.substr(lineStart, openAt - lineStart));
      const bool blankAfter = blanks(text.substr(next, restEnd - next));
      if (blankBefore && blankAfter) {
        literalEnd = lineStart;
        next = lineEnd == std::string_view::npos ? text.size() : lineEnd + 1;
      }
    }
    addText(text.substr(pos, literalEnd - pos), pos);
    pos = next;

    if (inner.starts_with('!')) continue;
    if (inner.starts_with("#if")) {
      std::string_view expr = trim(inner.substr(3));
      if (expr.empty()) return error(openAt, "{{#if}} needs an expression");
      auto compiled = fhirpath::compile(expr);
      if (!compiled) {
        return error(openAt, "in {{#if " + std::string(expr) + "}}: " + compiled.error().message);
      }
      for (auto& v : referencedVariables(expr)) tpl.variables_.push_back(std::move(v));
      Open o;
      o.part.kind = Part::Kind::kIf;
      o.part.text = std::string(expr);
      o.part.line = lineAt(text, openAt);
      o.part.expr = std::move(*compiled);
      o.part.plan = ReplyPlan::compile(o.part.expr, memo);
      o.pos = openAt;
      open.push_back(std::move(o));
      continue;
    }
    if (inner == "else") {
      if (open.empty()) return error(openAt, "{{else}} outside {{#if}}");
      if (open.back().inElse) return error(openAt, "a second {{else}} in one {{#if}}");
      open.back().inElse = true;
      continue;
    }
    if (inner.starts_with('/')) {
      if (trim(inner.substr(1)) != "if") {
        return error(openAt, "unknown closing tag {{" + std::string(inner) + "}}");
      }
      if (open.empty()) return error(openAt, "{{/if}} without {{#if}}");
      Part done = std::move(open.back().part);
      open.pop_back();
      target().push_back(std::move(done));
      continue;
    }
    if (inner.starts_with('#')) {
      return error(openAt, "unknown block {{" + std::string(inner) + "}}; only {{#if}} exists");
    }
    if (inner.empty()) return error(openAt, "empty {{ }}");
    auto compiled = fhirpath::compile(inner);
    if (!compiled) {
      return error(openAt, "in {{ " + std::string(inner) + " }}: " + compiled.error().message);
    }
    for (auto& v : referencedVariables(inner)) tpl.variables_.push_back(std::move(v));
    Part p;
    p.kind = Part::Kind::kValue;
    p.text = std::string(inner);
    p.line = lineAt(text, openAt);
    p.expr = std::move(*compiled);
    p.plan = ReplyPlan::compile(p.expr, memo);
    target().push_back(std::move(p));
  }
  if (!open.empty()) return error(open.back().pos, "{{#if}} without {{/if}}");
  tpl.memoSlots_ = memo.finish();
  std::sort(tpl.variables_.begin(), tpl.variables_.end());
  tpl.variables_.erase(std::unique(tpl.variables_.begin(), tpl.variables_.end()),
                       tpl.variables_.end());
  return tpl;
}

namespace {

using EngineEnv = std::function<const fhirpath::Environment&()>;

// `scope` null: every expression through the general engine.
Result<void> renderParts(const std::vector<Part>& parts, const fhirpath::Node& focus,
                         const EngineEnv& env, const std::string& source, PlanScope* scope,
                         ReplyTemplate::RenderStats* stats, std::string& out) {
  for (const auto& part : parts) {
    switch (part.kind) {
      case Part::Kind::kText:
        out += part.text;
        break;
      case Part::Kind::kValue:
      case Part::Kind::kIf: {
        const std::vector<Part>* branch = nullptr;
        if (scope && part.plan) {
          PlanItems items(scope->memory());
          bool decided = part.plan->evaluate(*scope, items);
          if (decided && part.kind == Part::Kind::kValue) {
            // Written aside: a plan that declines half way must leave `out` as it was.
            std::string text;
            decided = planText(*scope, items, text);
            if (decided) out += text;
          } else if (decided) {
            bool truth = false;
            decided = planTruth(*scope, items, truth);
            if (decided) branch = truth ? &part.then : &part.otherwise;
          }
          if (decided) {
            if (stats) ++stats->planned;
            if (branch) {
              if (auto r = renderParts(*branch, focus, env, source, scope, stats, out); !r) {
                return r;
              }
            }
            break;
          }
        }
        if (stats) ++stats->engine;
        auto items = fhirpath::evaluate(part.expr, focus, env());
        if (!items) {
          return fail(ErrorCode::kInvalid, source + ": line " + std::to_string(part.line) + ": " +
                                               part.text + ": " + items.error().message);
        }
        if (part.kind == Part::Kind::kValue) {
          out += collectionText(*items);
        } else {
          const auto& next = collectionTruth(*items) ? part.then : part.otherwise;
          if (auto r = renderParts(next, focus, env, source, scope, stats, out); !r) return r;
        }
        break;
      }
    }
  }
  return {};
}

}  // namespace

Result<std::string> ReplyTemplate::render(const fhirpath::Node& focus,
                                          const fhirpath::Environment& env,
                                          RenderStats* stats) const {
  std::string out;
  out.reserve(1024);
  PlanScope scope(focus, env, memoSlots_);
  const EngineEnv engineEnv = [&env]() -> const fhirpath::Environment& { return env; };
  if (auto r = renderParts(parts_, focus, engineEnv, source_, &scope, stats, out); !r) {
    return std::unexpected(r.error());
  }
  return out;
}

Result<std::string> ReplyTemplate::render(const fhirpath::Node& focus,
                                          const PlanVariables& variables,
                                          const EngineEnv& engineEnv, RenderStats* stats) const {
  std::string out;
  out.reserve(1024);
  PlanScope scope(focus, variables, memoSlots_);
  if (auto r = renderParts(parts_, focus, engineEnv, source_, &scope, stats, out); !r) {
    return std::unexpected(r.error());
  }
  return out;
}

Result<std::string> ReplyTemplate::renderWithEngine(const fhirpath::Node& focus,
                                                    const fhirpath::Environment& env) const {
  std::string out;
  const EngineEnv engineEnv = [&env]() -> const fhirpath::Environment& { return env; };
  if (auto r = renderParts(parts_, focus, engineEnv, source_, nullptr, nullptr, out); !r) {
    return std::unexpected(r.error());
  }
  return out;
}

}  // namespace switchboard::channels::reply
