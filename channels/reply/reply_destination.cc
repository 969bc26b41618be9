// The `reply` destination; see reply_destination.h.
#include "channels/reply/reply_destination.h"

#include <Poco/Exception.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/URI.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "channels/fhir/json_read.h"
#include "channels/http/http_destination.h"
#include "channels/reply/reply_plan.h"

namespace switchboard::channels::reply {

namespace {

const char* const kMonths[] = {"January",   "February", "March",    "April",
                               "May",       "June",     "July",     "August",
                               "September", "October",  "November", "December"};
const char* const kWeekdays[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                 "Thursday", "Friday", "Saturday"};

std::string twoDigits(int v) { return (v < 10 ? "0" : "") + std::to_string(v); }

std::string compactJson(std::initializer_list<std::pair<const char*, std::string>> fields,
                        std::optional<int> status = std::nullopt) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.StartObject();
  if (status) {
    w.Key("status");
    w.Int(*status);
  }
  for (const auto& [k, v] : fields) {
    w.Key(k);
    w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
  }
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

std::optional<std::int64_t> parseInt(const std::string* text) {
  if (!text || text->empty()) return std::nullopt;
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(text->data(), text->data() + text->size(), v);
  if (ec != std::errc() || p != text->data() + text->size()) return std::nullopt;
  return v;
}

std::string metadataValue(const core::Metadata& m, std::string_view key) {
  const std::string* v = core::findMetadata(m, key);
  return v ? *v : std::string();
}

void setStringVariable(fhirpath::Environment& env, const std::string& name,
                       const std::string& value) {
  if (value.empty()) {
    env.setVariable(name, fhirpath::Collection{});
  } else {
    env.setVariable(name, value);
  }
}

}  // namespace

const std::vector<std::string>& builtinReplyVariables() {
  static const std::vector<std::string> kNames = {
      // set by the reply destination
      "sender", "channel", "provider", "upstreamStatus", "clinicPhone", "timezone",
      "appointmentNumber", "localDate", "localTime", "localDateIso",
      // FHIRPath's own
      "resource", "context", "rootResource", "ucum", "sct", "loinc"};
  return kNames;
}

std::string appointmentNumberFrom(std::string_view upstreamResponse) {
  // `complete`: the location text is whole, so an id running to its end is the whole id.
  auto idAfter = [](std::string_view location, bool complete) -> std::string {
    const std::size_t at = location.find("Appointment/");
    if (at == std::string_view::npos) return {};
    if (at > 0 && location[at - 1] != '/') return {};
    std::string_view rest = location.substr(at + 12);
    std::size_t end = 0;
    while (end < rest.size() && rest[end] != '/' && rest[end] != '?') ++end;
    if (end == rest.size() && !complete) return {};
    return std::string(rest.substr(0, end));
  };
  const channels::fhir::JsonRead read(upstreamResponse);
  if (const rapidjson::Value* doc = read.root(); doc && doc->IsObject()) {
    auto entries = doc->FindMember("entry");
    if (entries != doc->MemberEnd() && entries->value.IsArray()) {
      for (const auto& e : entries->value.GetArray()) {
        if (!e.IsObject()) continue;
        auto loc = e.FindMember("location");
        if (loc == e.MemberEnd() || !loc->value.IsString()) continue;
        std::string id =
            idAfter(std::string_view(loc->value.GetString(), loc->value.GetStringLength()), true);
        if (!id.empty()) return id;
      }
    }
    return {};
  }
  // Not JSON (e.g. cut at the stored response limit): look for "location":"...Appointment/<id>.
  std::size_t pos = 0;
  while ((pos = upstreamResponse.find("\"location\"", pos)) != std::string_view::npos) {
    pos += 10;
    const std::size_t colon = upstreamResponse.find(':', pos);
    if (colon == std::string_view::npos) break;
    const std::size_t open = upstreamResponse.find('"', colon);
    if (open == std::string_view::npos) break;
    const std::size_t close = upstreamResponse.find('"', open + 1);
    const bool complete = close != std::string_view::npos;
    const std::size_t end = complete ? close : upstreamResponse.size();
    std::string id = idAfter(upstreamResponse.substr(open + 1, end - open - 1), complete);
    if (!id.empty()) return id;
    if (!complete) break;
    pos = close;
  }
  return {};
}

std::optional<LocalDateTime> localDateTime(std::string_view start, const core::TimeZone* zone,
                                           DateStyle style, bool clock24) {
  auto t = fhirpath::Temporal::parse(start, fhirpath::TemporalKind::kDateTime);
  if (!t) t = fhirpath::Temporal::parse(start, fhirpath::TemporalKind::kDate);
  if (!t || t->precision < fhirpath::Precision::kDay) return std::nullopt;
  const bool hasTime = t->precision >= fhirpath::Precision::kHour;
  int year = t->year;
  int month = t->month, day = t->day;
  int hour = t->hour, minute = t->minute;
  std::int64_t days = core::daysFromCivil(year, month, day);
  if (hasTime && t->tzOffsetMinutes) {
    // An instant: find the UTC moment, then the clinic's wall clock at that moment.
    const std::int64_t utc = days * 86400 + hour * 3600 + minute * 60 + t->second -
                             static_cast<std::int64_t>(*t->tzOffsetMinutes) * 60;
    const std::int64_t offset = zone ? zone->offsetAt(utc) : *t->tzOffsetMinutes * 60;
    std::int64_t local = utc + offset;
    days = local / 86400;
    std::int64_t secs = local % 86400;
    if (secs < 0) {
      secs += 86400;
      --days;
    }
    core::civilFromDays(days, year, month, day);
    hour = static_cast<int>(secs / 3600);
    minute = static_cast<int>(secs % 3600 / 60);
  }
  const int weekday = static_cast<int>(((days + 4) % 7 + 7) % 7);
  LocalDateTime out;
  out.isoDate = std::to_string(year) + "-" + twoDigits(month) + "-" + twoDigits(day);
  switch (style) {
    case DateStyle::kUs:
      out.date = std::string(kWeekdays[weekday]) + ", " + kMonths[month - 1] + " " +
                 std::to_string(day) + ", " + std::to_string(year);
      break;
    case DateStyle::kIntl:
      out.date = std::string(kWeekdays[weekday]) + " " + std::to_string(day) + " " +
                 kMonths[month - 1] + " " + std::to_string(year);
      break;
    case DateStyle::kIso:
      out.date = out.isoDate;
      break;
  }
  if (hasTime) {
    if (clock24) {
      out.time = twoDigits(hour) + ":" + twoDigits(minute);
    } else {
      const int h12 = hour % 12 == 0 ? 12 : hour % 12;
      out.time = std::to_string(h12) + ":" + twoDigits(minute) + (hour < 12 ? " AM" : " PM");
    }
  }
  return out;
}

ReplyDestination::ReplyDestination(ReplyConfig config, std::shared_ptr<const core::Clock> clock)
    : config_(std::move(config)), clock_(std::move(clock)) {
  if (auto e = fhirpath::compile("entry.resource.ofType(Appointment).first().start"); e) {
    appointmentStart_ = std::move(*e);
    PlanMemo memo;  // one expression: nothing to share
    appointmentStartPlan_ = ReplyPlan::compile(appointmentStart_, memo);
    memo.finish();
  }
  if (config_.provider.baseUrl.starts_with("https://")) {
    tls_ = new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, "", "", "",
                                  Poco::Net::Context::VERIFY_RELAXED, 9, true);
  }
}

ReplyDestination::~ReplyDestination() = default;

std::string ReplyDestination::endpointKey() const {
  return std::string("reply:") + providerName(config_.provider.provider) + ":" +
         config_.provider.baseUrl;
}

Result<ComposedReply> ReplyDestination::compose(const core::DeliveryRequest& request) const {
  ComposedReply out;
  auto skip = [&](std::string why) {
    out.outcome = ComposedReply::Outcome::kSkip;
    out.skipReason = std::move(why);
    return out;
  };
  if (!request.metadata) return fail(ErrorCode::kRequired, "reply: no message metadata");
  const core::Metadata& md = *request.metadata;
  const std::string kind = metadataValue(md, "kind");
  if (kind == "status") return skip("status callback");
  if (!config_.kinds.empty() &&
      std::find(config_.kinds.begin(), config_.kinds.end(), kind) == config_.kinds.end()) {
    return skip("kind " + (kind.empty() ? std::string("(none)") : kind) + " is not answered");
  }
  const std::string replyTo = metadataValue(md, "reply_to");
  if (replyTo.empty()) return skip("no reply_to");
  const std::string provider = metadataValue(md, "provider");
  const char* mine = providerName(config_.provider.provider);
  if (!provider.empty() && provider != mine) {
    return fail(ErrorCode::kNotSupported, std::string("reply: a ") + mine +
                                              " reply destination cannot answer a message from " +
                                              provider);
  }
  const std::string* upstream = core::findMetadata(md, "upstream_status");
  if (!upstream) {
    return fail(ErrorCode::kRequired,
                "reply: no upstream_status; configure this destination with \"after\": "
                "\"<the FHIR destination>\"");
  }
  out.rejection = !(*upstream == "ok" || *upstream == "succeeded");
  if (out.rejection && !config_.rejection) return skip("EHR refused and no rejection_template");

  // Variables shared by the text and the window template parameters, as text for the plans; the
  // general engine's Environment is made of them only if an expression needs the engine.
  const std::string sender = metadataValue(md, "sender");
  const std::string timezone = config_.zone ? config_.zone->name() : std::string();
  const std::string* upstreamResponse = core::findMetadata(md, "upstream_response");
  const std::string appointmentNumber =
      upstreamResponse ? appointmentNumberFrom(*upstreamResponse) : std::string();
  PlanVariables vars = {{"sender", sender},
                        {"channel", request.channelId},
                        {"provider", mine},
                        {"upstreamStatus", *upstream},
                        {"clinicPhone", config_.clinicPhone},
                        {"timezone", timezone},
                        {"appointmentNumber", appointmentNumber}};
  for (const auto& [name, value] : config_.variables) vars.emplace_back(name, value);
  std::optional<fhirpath::Environment> env;
  std::size_t applied = 0;  // the entries of `vars` already in `env` (it only grows)
  const std::function<const fhirpath::Environment&()> engineEnv =
      [&]() -> const fhirpath::Environment& {
    if (!env) env.emplace();
    for (; applied < vars.size(); ++applied) {
      setStringVariable(*env, std::string(vars[applied].first), std::string(vars[applied].second));
    }
    return *env;
  };

  // The Bundle: read in place into the thread's arena when its reader takes it (the values
  // parseJsonResource() gives), else by parseJsonResource(). `arena` outlives every node of it.
  const std::optional<switchboard::fhir::ArenaDocument> arena =
      channels::fhir::readInArena(request.payload);
  fhirpath::Node focus;
  bool haveBundle = arena.has_value();
  if (arena) {
    focus = fhirpath::Node::resource(arena->document());
  } else if (auto bundle = fhirpath::parseJsonResource(request.payload)) {
    focus = std::move(*bundle);
    haveBundle = true;
  } else if (!out.rejection) {
    return fail(ErrorCode::kStructure,
                "reply: the payload is not a FHIR Bundle: " + bundle.error().message);
  }
  LocalDateTime local;
  if (haveBundle && appointmentStart_.root()) {
    const rapidjson::Value* s = nullptr;
    bool decided = false;
    if (appointmentStartPlan_) {
      PlanScope scope(focus, vars, 0);
      PlanItems starts(scope.memory());
      decided = appointmentStartPlan_->evaluate(scope, starts);
      if (decided && !starts.empty() && starts.front().kind == PlanItem::Kind::kElement) {
        s = starts.front().json;
      }
    }
    if (!decided) {
      auto starts = fhirpath::evaluate(appointmentStart_, focus, engineEnv());
      if (starts && !starts->empty()) s = starts->front().json();
    }
    if (s && s->IsString()) {
      if (auto l = localDateTime(std::string_view(s->GetString(), s->GetStringLength()),
                                 config_.zone.get(), config_.dateStyle, config_.clock24)) {
        local = *l;
      }
    }
  }
  vars.emplace_back("localDate", local.date);
  vars.emplace_back("localTime", local.time);
  vars.emplace_back("localDateIso", local.isoDate);

  OutboundMessage& m = out.message;
  m.to = replyTo;
  m.from = metadataValue(md, "reply_from");
  if (m.from.empty()) {
    switch (config_.provider.provider) {
      case Provider::kMeta:
        m.from = config_.phoneNumberId;
        break;
      case Provider::kEightByEight:
        m.from = config_.subaccountId;
        break;
      case Provider::kTwilio:
        m.from = config_.from;
        break;
    }
  }
  m.clientReference = "sb-" + std::to_string(request.deliveryId);

  const auto received = parseInt(core::findMetadata(md, "received_at_ms"));
  const bool outsideWindow =
      received && clock_->nowMs() - *received > config_.windowHours * 3600 * 1000;
  if (outsideWindow) {
    const WindowTemplate& wt = out.rejection && config_.rejectionWindowTemplate.configured
                                   ? config_.rejectionWindowTemplate
                                   : config_.windowTemplate;
    if (!wt.configured) {
      return fail(ErrorCode::kNotSupported,
                  "reply: more than " + std::to_string(config_.windowHours) +
                      " hours since the patient's message (WhatsApp customer service window) and "
                      "no window_template is configured; free text would be refused");
    }
    m.isTemplate = true;
    m.templateName = wt.name;
    m.templateLanguage = wt.language;
    m.contentSid = wt.contentSid;
    for (const auto& p : wt.parameters) {
      auto text = p.render(focus, vars, engineEnv);
      if (!text) return std::unexpected(text.error());
      m.parameters.push_back(std::move(*text));
    }
    return out;
  }
  const ReplyTemplate& tpl = out.rejection ? *config_.rejection : *config_.confirmation;
  auto text = tpl.render(focus, vars, engineEnv);
  if (!text) return std::unexpected(text.error());
  m.text = truncateUtf8(*text, maxTextChars(config_.provider.provider));
  return out;
}

ReplyDestination::Prepared ReplyDestination::prepare(const core::DeliveryRequest& request) const {
  Prepared p;
  auto composed = compose(request);
  if (!composed) {
    p.unsent = core::DeliveryResult::fail(compactJson({{"error", composed.error().message}}));
    return p;
  }
  if (composed->outcome == ComposedReply::Outcome::kSkip) {
    p.unsent = core::DeliveryResult::ok(compactJson({{"skipped", composed->skipReason}}));
    return p;
  }
  auto call = buildCall(config_.provider, composed->message);
  if (!call) {
    p.unsent = core::DeliveryResult::fail(compactJson({{"error", call.error().message}}));
    return p;
  }
  p.call = std::move(*call);
  p.rejection = composed->rejection;
  p.isTemplate = composed->message.isTemplate;
  p.headers = {{"Content-Type", p.call.contentType}, {"Accept", "application/json"}};
  p.headers.insert(p.headers.end(), p.call.headers.begin(), p.call.headers.end());
  return p;
}

Result<HttpReply> ReplyDestination::exchange(const Prepared& prepared) {
  if (isPlainHttpUrl(prepared.call.url)) {
    ClientRequest r;
    r.url = prepared.call.url;
    r.headers = prepared.headers;
    r.body = prepared.call.body;
    return client_.exchange(r, config_.timeout, kMaxBody);
  }
  try {
    Poco::URI uri(prepared.call.url);
    ClientPool::Lease session = connections_.acquire(uri, tls_, config_.timeout);
    Poco::Net::HTTPRequest req(Poco::Net::HTTPRequest::HTTP_POST, uri.getPathAndQuery(),
                               Poco::Net::HTTPMessage::HTTP_1_1);
    req.setContentLength(static_cast<std::streamsize>(prepared.call.body.size()));
    for (const auto& h : prepared.headers) req.set(h.name, h.value);
    std::ostream& os = session->sendRequest(req);
    os.write(prepared.call.body.data(), static_cast<std::streamsize>(prepared.call.body.size()));
    Poco::Net::HTTPResponse resp;
    std::istream& in = session->receiveResponse(resp);
    HttpReply reply;
    if (readBody(in, reply.body, kMaxBody) && resp.getKeepAlive()) session.keep();
    reply.status = static_cast<int>(resp.getStatus());
    reply.reason = resp.getReason();
    for (const auto& [k, v] : resp) reply.headers.push_back({k, v});
    return reply;
  } catch (const Poco::TimeoutException& e) {
    return fail(ErrorCode::kTimeout, e.displayText());
  } catch (const Poco::Exception& e) {
    return fail(ErrorCode::kTransient, e.displayText());
  } catch (const std::exception& e) {
    return fail(ErrorCode::kException, e.what());
  }
}

core::DeliveryResult ReplyDestination::interpret(const Prepared& prepared,
                                                 const Result<HttpReply>& answer) const {
  if (!answer) {
    const Error& e = answer.error();
    const char* what = e.code == ErrorCode::kTimeout     ? "timeout: "
                       : e.code == ErrorCode::kException ? "error: "
                                                         : "connection error: ";
    return core::DeliveryResult::retry(compactJson({{"error", what + e.message}}));
  }
  const std::string reply = prepared.rejection ? "rejection" : "confirmation";
  const std::string form = prepared.isTemplate ? "template" : "text";
  const Provider provider = config_.provider.provider;
  const int status = answer->status;
  if (status >= 200 && status < 300) {
    const std::string outboundId = outboundIdFrom(provider, answer->body);
    auto ok = core::DeliveryResult::ok(
        compactJson({{"outbound_id", outboundId}, {"reply", reply}, {"form", form}}), status);
    ok.externalId = outboundId;  // status callbacks naming it are recorded on this message
    return ok;
  }
  const ProviderError error = providerErrorFrom(provider, answer->body);
  const std::string summary =
      compactJson({{"provider", providerName(provider)},
                   {"code", error.code},
                   {"message", error.message.empty() ? answer->reason : error.message}},
                  status);
  core::DeliveryResult result;
  result.responseCode = status;
  result.response = summary;
  result.status = classifyHttpStatus(status);
  if (result.status == core::DeliveryStatus::kFail && isThrottled(provider, error)) {
    result.status = core::DeliveryStatus::kRetry;
  }
  if (result.status == core::DeliveryStatus::kRetry) {
    if (const std::string* ra = answer->header("Retry-After"))
      result.retryAfter = parseRetryAfter(*ra);
  }
  return result;
}

core::DeliveryResult ReplyDestination::send(const core::DeliveryRequest& request) {
  const Prepared p = prepare(request);
  if (p.unsent) return *p.unsent;
  return interpret(p, exchange(p));
}

void ReplyDestination::sendMany(std::span<const core::DeliveryRequest* const> requests,
                                std::span<core::SentDelivery> sent) {
  std::vector<Prepared> prepared;
  prepared.reserve(requests.size());
  for (const core::DeliveryRequest* r : requests) prepared.push_back(prepare(*r));
  std::vector<ClientRequest> calls;
  std::vector<std::size_t> callOf;  // index into requests, per call
  for (std::size_t i = 0; i < requests.size(); ++i) {
    const Prepared& p = prepared[i];
    if (p.unsent) {
      sent[i].result = *p.unsent;
    } else if (!isPlainHttpUrl(p.call.url)) {  // TLS through Poco: one after another
      const auto t0 = std::chrono::steady_clock::now();
      sent[i].result = interpret(p, exchange(p));
      sent[i].elapsed = std::chrono::steady_clock::now() - t0;
    } else {
      ClientRequest& c = calls.emplace_back();
      c.url = p.call.url;
      c.headers = p.headers;
      c.body = p.call.body;
      callOf.push_back(i);
    }
  }
  if (calls.empty()) return;
  std::vector<ClientExchange> answers(calls.size());
  client_.exchangeMany(calls, answers, config_.timeout, kMaxBody, kConnections);
  for (std::size_t j = 0; j < calls.size(); ++j) {
    sent[callOf[j]].result = interpret(prepared[callOf[j]], answers[j].reply);
    sent[callOf[j]].elapsed = answers[j].elapsed;
  }
}

// ------------------------------------------------------------------ configuration

namespace {

// Resolves a template path: absolute as is; relative against the parent of the conf directory
// (the repository root in a checkout), then the conf directory, then the working directory.
std::optional<std::string> resolveTemplatePath(const std::string& path,
                                               const std::string& confDir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::path(path).is_absolute()) {
    return fs::is_regular_file(path, ec) ? std::optional<std::string>(path) : std::nullopt;
  }
  std::vector<fs::path> candidates;
  if (!confDir.empty()) {
    fs::path conf = fs::absolute(confDir, ec);
    candidates.push_back(conf.parent_path() / path);
    candidates.push_back(conf / path);
  }
  candidates.push_back(fs::path(path));
  for (const auto& c : candidates) {
    if (fs::is_regular_file(c, ec)) return c.string();
  }
  return std::nullopt;
}

std::shared_ptr<const ReplyTemplate> loadTemplate(core::ConfigReader& config, std::string_view key,
                                                  const std::string& path,
                                                  const core::ConnectorContext& ctx) {
  auto resolved = resolveTemplatePath(path, ctx.confDir);
  if (!resolved) {
    config.invalid(key, "expected a readable template file (\"" + path +
                            "\" not found as given, nor under the conf directory or its parent)");
    return nullptr;
  }
  std::ifstream in(*resolved, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in.good() && !in.eof()) {
    config.invalid(key, "expected a readable template file (\"" + *resolved + "\")");
    return nullptr;
  }
  auto tpl = ReplyTemplate::parse(text.str(), *resolved);
  if (!tpl) {
    config.invalid(key, "expected a valid reply template: " + tpl.error().message);
    return nullptr;
  }
  return std::make_shared<const ReplyTemplate>(std::move(*tpl));
}

// Reads an optional window template object; a problem inside it comes back as the error.
std::optional<Error> readWindowTemplate(core::ConfigReader& config, std::string_view key,
                                        Provider provider, WindowTemplate& out) {
  const rapidjson::Value* v = config.object(
      key, false,
      "template message sent outside the customer service window: {name, language, parameters} "
      "(Meta, 8x8) or {content_sid, parameters} (Twilio)");
  if (!v) return std::nullopt;
  core::ConfigReader r = config.child(*v, key);
  out.name = r.string("name", "", "approved template name (Meta, 8x8)");
  out.language = r.string("language", "", "template language code, e.g. en_US (Meta, 8x8)");
  out.contentSid = r.string("content_sid", "", "Twilio Content SID (HX...) of the template");
  const std::vector<std::string> params =
      r.strings("parameters", "body parameters in order; each a reply template ({{ FHIRPath }})");
  for (std::size_t i = 0; i < params.size(); ++i) {
    auto tpl = ReplyTemplate::parse(params[i], r.pointerOf("parameters") + "/" + std::to_string(i));
    if (!tpl) {
      r.invalid("parameters", "expected valid templates: " + tpl.error().message);
      break;
    }
    out.parameters.push_back(std::move(*tpl));
  }
  if (provider == Provider::kTwilio) {
    if (out.contentSid.empty())
      r.invalid("content_sid", "expected a Twilio Content SID for Twilio");
  } else {
    if (out.name.empty()) r.invalid("name", "expected the approved template name");
    if (out.language.empty()) r.invalid("language", "expected the template language code");
  }
  if (auto done = r.finish(); !done) return done.error();
  out.configured = true;
  return std::nullopt;
}

}  // namespace

Result<std::unique_ptr<core::Destination>> ReplyDestination::create(
    core::ConfigReader& config, const core::ConnectorContext& ctx) {
  auto made = create(config, ctx, std::make_shared<core::SystemClock>());
  if (!made) return std::unexpected(made.error());
  return std::unique_ptr<core::Destination>(std::move(*made));
}

Result<std::unique_ptr<ReplyDestination>> ReplyDestination::create(
    core::ConfigReader& config, const core::ConnectorContext& ctx,
    std::shared_ptr<const core::Clock> clock) {
  ReplyConfig c;
  const std::string providerText =
      config.requiredString("provider", "send API: meta, 8x8 or twilio");
  const auto provider = parseProvider(providerText);
  if (!providerText.empty() && !provider)
    config.invalid("provider", "expected meta, 8x8 or twilio");
  c.provider.provider = provider.value_or(Provider::kMeta);
  c.provider.baseUrl = config.string("base_url", defaultBaseUrl(c.provider.provider),
                                     "send API base URL (tests point it at a local fake)");
  while (c.provider.baseUrl.ends_with('/')) c.provider.baseUrl.pop_back();
  if (!c.provider.baseUrl.starts_with("http://") && !c.provider.baseUrl.starts_with("https://")) {
    config.invalid("base_url", "expected an http:// or https:// URL");
  }
  c.provider.apiVersion = config.string("api_version", "v21.0", "Meta Graph API version");

  // Credentials: flat keys, or the same keys inside a "credentials" object.
  core::ConfigReader* creds = &config;
  std::optional<core::ConfigReader> nested;
  if (const rapidjson::Value* v =
          config.object("credentials", false, "credentials (or the same keys at this level)")) {
    nested.emplace(config.child(*v, "credentials"));
    creds = &*nested;
  }
  c.provider.accessToken =
      creds->string("access_token", "", "Meta bearer access token (use ${env:...})");
  c.phoneNumberId =
      creds->string("phone_number_id", "", "Meta sender phone number id when reply_from is empty");
  c.provider.apiKey = creds->string("api_key", "", "8x8 API key, sent as a bearer token");
  c.subaccountId = creds->string("subaccount_id", "", "8x8 subaccount when reply_from is empty");
  c.provider.accountSid = creds->string("account_sid", "", "Twilio Account SID");
  c.provider.authToken = creds->string("auth_token", "", "Twilio auth token (use ${env:...})");
  c.from = creds->string("from", "", "Twilio sender (whatsapp:+E.164) when reply_from is empty");
  switch (c.provider.provider) {
    case Provider::kMeta:
      if (c.provider.accessToken.empty())
        creds->invalid("access_token", "expected a Meta access token");
      break;
    case Provider::kEightByEight:
      if (c.provider.apiKey.empty()) creds->invalid("api_key", "expected an 8x8 API key");
      break;
    case Provider::kTwilio:
      if (c.provider.accountSid.empty())
        creds->invalid("account_sid", "expected a Twilio Account SID");
      if (c.provider.authToken.empty())
        creds->invalid("auth_token", "expected a Twilio auth token");
      break;
  }
  std::optional<Error> nestedError;
  if (nested) {
    if (auto done = nested->finish(); !done) nestedError = done.error();
  }

  c.timeout = std::chrono::milliseconds(
      config.integer("timeout_ms", 10000, 100, 600000, "request timeout in milliseconds"));
  const std::string templatePath = config.requiredString(
      "template", "confirmation text template file (absolute, or relative to the repository root)");
  if (!templatePath.empty()) c.confirmation = loadTemplate(config, "template", templatePath, ctx);
  const std::string rejectionPath = config.string(
      "rejection_template", "", "apology template file sent when the EHR refused the Bundle");
  if (!rejectionPath.empty()) {
    c.rejection = loadTemplate(config, "rejection_template", rejectionPath, ctx);
  }
  c.clinicPhone = config.string("clinic_phone", "", "clinic phone number shown as %clinicPhone");
  const std::string zone = config.string(
      "timezone", "", "IANA zone of the clinic (display only), e.g. America/New_York");
  if (!zone.empty()) {
    auto tz = core::TimeZone::get(zone);
    if (tz) {
      c.zone = std::move(*tz);
    } else {
      config.invalid("timezone", "expected an IANA time zone name: " + tz.error().message);
    }
  }
  c.windowHours =
      config.integer("window_hours", 24, 1, 24 * 30,
                     "hours after the patient's message during which free text is allowed");
  if (auto e =
          readWindowTemplate(config, "window_template", c.provider.provider, c.windowTemplate)) {
    nestedError = nestedError ? nestedError : e;
  }
  if (auto e = readWindowTemplate(config, "rejection_window_template", c.provider.provider,
                                  c.rejectionWindowTemplate)) {
    nestedError = nestedError ? nestedError : e;
  }
  if (const rapidjson::Value* vars =
          config.object("variables", false, "extra %name string values for the templates")) {
    for (const auto& m : vars->GetObject()) {
      if (!m.value.IsString()) {
        config.invalid("variables", "expected string values");
        break;
      }
      const std::string name = m.name.GetString();
      const auto& builtin = builtinReplyVariables();
      bool identifier = !name.empty() && !std::isdigit(static_cast<unsigned char>(name[0]));
      for (char ch : name) {
        identifier = identifier && (std::isalnum(static_cast<unsigned char>(ch)) || ch == '_');
      }
      if (!identifier || std::find(builtin.begin(), builtin.end(), name) != builtin.end()) {
        config.invalid("variables",
                       "expected identifier names other than the built-in ones; "
                       "\"" +
                           name + "\" is not usable");
        break;
      }
      c.variables.emplace_back(name, m.value.GetString());
    }
  }
  c.kinds = config.strings("kinds", "inbound kinds to answer (default: all but status)");
  const std::string style = config.string("date_style", "us", "us, intl or iso");
  if (style == "us") {
    c.dateStyle = DateStyle::kUs;
  } else if (style == "intl") {
    c.dateStyle = DateStyle::kIntl;
  } else if (style == "iso") {
    c.dateStyle = DateStyle::kIso;
  } else {
    config.invalid("date_style", "expected us, intl or iso");
  }
  // Every %name a template uses must exist, so a typo fails at deploy, not per message.
  auto known = [&](const std::string& name) {
    const auto& builtin = builtinReplyVariables();
    if (std::find(builtin.begin(), builtin.end(), name) != builtin.end()) return true;
    if (name.starts_with("vs-") || name.starts_with("ext-")) return true;
    for (const auto& [n, v] : c.variables) {
      if (n == name) return true;
    }
    return false;
  };
  auto checkVariables = [&](std::string_view key, const ReplyTemplate& tpl) {
    for (const auto& name : tpl.variables()) {
      if (!known(name)) {
        config.invalid(key, "expected templates that use only known variables; " + tpl.source() +
                                " uses %" + name + ": define it under \"variables\"");
        return;
      }
    }
  };
  if (c.confirmation) checkVariables("template", *c.confirmation);
  if (c.rejection) checkVariables("rejection_template", *c.rejection);
  for (const auto* wt : {&c.windowTemplate, &c.rejectionWindowTemplate}) {
    for (const auto& p : wt->parameters) checkVariables("variables", p);
  }
  const std::string clockText = config.string("clock", "12h", "12h or 24h");
  if (clockText != "12h" && clockText != "24h") config.invalid("clock", "expected 12h or 24h");
  c.clock24 = clockText == "24h";
  if (auto done = config.finish(); !done) return std::unexpected(done.error());
  if (nestedError) return std::unexpected(*nestedError);
  return std::make_unique<ReplyDestination>(std::move(c), std::move(clock));
}

}  // namespace switchboard::channels::reply
