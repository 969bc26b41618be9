// What the reply destination keeps of a provider's answer (outboundIdFrom, providerErrorFrom):
// the exact texts for each provider, for JSON the thread's arena reader takes and for JSON it
// leaves to RapidJSON (escapes, decimals, long numbers, a BOM), and with the arena held.
#include <boost/test/unit_test.hpp>

#include <string>

#include "channels/reply/provider_api.h"
#include "engine/fhir/json_arena.h"

using namespace switchboard;
using namespace switchboard::channels::reply;

namespace {

template <typename F>
void bothWays(F&& check) {
  check();
  auto held = fhir::ArenaDocument::read("{}");
  BOOST_REQUIRE(held.has_value());
  check();
}

std::string error(Provider p, std::string_view body) {
  const ProviderError e = providerErrorFrom(p, body);
  return e.code + "|" + e.message;
}

}  // namespace

BOOST_AUTO_TEST_CASE(outbound_ids_of_each_provider) {
  bothWays([] {
    const std::string meta =
        R"({"messaging_product":"whatsapp","contacts":[{"input":"15551234567","wa_id":"15551234567"}],)"
        R"("messages":[{"id":"wamid.HBgLMTU1NTEyMzQ1NjcVAgARGBI1RjQy","message_status":"accepted"}]})";
    BOOST_TEST(outboundIdFrom(Provider::kMeta, meta) == "wamid.HBgLMTU1NTEyMzQ1NjcVAgARGBI1RjQy");
    BOOST_TEST(outboundIdFrom(Provider::kMeta, "\xEF\xBB\xBF\n" + meta) ==
               "wamid.HBgLMTU1NTEyMzQ1NjcVAgARGBI1RjQy");
    BOOST_TEST(outboundIdFrom(Provider::kMeta, R"({"messages":[{"id":"wamid.\u0041B"}]})") ==
               "wamid.AB");
    BOOST_TEST(outboundIdFrom(Provider::kMeta, R"({"messages":[7,{"id":"x"}]})") == "");
    BOOST_TEST(outboundIdFrom(Provider::kMeta, R"({"messages":[]})") == "");
    BOOST_TEST(outboundIdFrom(Provider::kMeta, R"({"messages":[{"id":1.5}]})") == "");
    BOOST_TEST(outboundIdFrom(
                   Provider::kEightByEight,
                   R"({"umid":"6a1f0e2c-8d7b-4c1e-9f3a-2b4c6d8e0f1a","clientMessageId":null,)"
                   R"("status":{"state":"Queued"}})") == "6a1f0e2c-8d7b-4c1e-9f3a-2b4c6d8e0f1a");
    BOOST_TEST(outboundIdFrom(Provider::kEightByEight, R"({"umid":123456789012345678})") ==
               "123456789012345678");
    BOOST_TEST(outboundIdFrom(Provider::kEightByEight, R"({"umid":-42})") == "-42");
    BOOST_TEST(outboundIdFrom(Provider::kEightByEight, R"({"umid":1234567890123456789})") ==
               "1234567890123456789");
    BOOST_TEST(outboundIdFrom(Provider::kEightByEight, R"({"umid":12345678901234567890})") ==
               "12345678901234567890");
    BOOST_TEST(outboundIdFrom(Provider::kTwilio,
                              R"({"sid":"SM1f0e2c8d7b4c1e9f3a2b4c6d8e0f1a2b","status":"queued",)"
                              R"("price":null,"num_segments":"1"})") ==
               "SM1f0e2c8d7b4c1e9f3a2b4c6d8e0f1a2b");
    BOOST_TEST(outboundIdFrom(Provider::kTwilio, R"({"sid":true})") == "");
    BOOST_TEST(outboundIdFrom(Provider::kTwilio, R"({"sid":"SM1",})") == "");
    BOOST_TEST(outboundIdFrom(Provider::kTwilio, "\f{\"sid\":\"SM1\"}") == "");
    BOOST_TEST(outboundIdFrom(Provider::kTwilio, "") == "");
  });
}

BOOST_AUTO_TEST_CASE(provider_errors_of_each_provider) {
  bothWays([] {
    BOOST_TEST(error(Provider::kMeta,
                     R"({"error":{"message":"(#131030) Recipient phone number 15551234567 not in )"
                     R"(allowed list","type":"OAuthException","code":131030,"error_data":)"
                     R"({"messaging_product":"whatsapp"},"fbtrace_id":"AbC"}})") ==
               "131030|(#***) Recipient phone number *** not in allowed list");
    BOOST_TEST(
        error(Provider::kMeta, R"({"error":{"code":"130429","message":"Rate limit hit"}})") ==
        "130429|Rate limit hit");
    BOOST_TEST(error(Provider::kMeta, R"({"code":100,"message":"not nested"})") == "|");
    BOOST_TEST(error(Provider::kMeta, R"({"error":{"code":1.5,"message":"caf\u00e9"}})") ==
               "|caf\xC3\xA9");
    BOOST_TEST(
        error(Provider::kEightByEight,
              R"({"code":1002,"message":"Invalid recipient +15551234567","errorId":"e-1"})") ==
        "1002|Invalid recipient +***");
    BOOST_TEST(
        error(Provider::kTwilio,
              R"({"code":21211,"message":"The 'To' number +15005550001 is not a valid phone )"
              R"(number.","more_info":"https://www.twilio.com/docs/errors/21211","status":400})") ==
        "21211|The 'To' number +*** is not a valid phone number.");
    BOOST_TEST(error(Provider::kTwilio, "<html>Bad Gateway</html>") == "|");
    BOOST_TEST(error(Provider::kTwilio, "") == "|");
  });
}
