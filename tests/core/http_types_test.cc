// Form decoding, header lookup and URL reconstruction.
#include <boost/test/unit_test.hpp>

#include "engine/core/http_types.h"

using namespace switchboard::core;

BOOST_AUTO_TEST_CASE(parses_form_bodies) {
  auto items = parseForm("Body=Ol%C3%A1&To=whatsapp%3A%2B14155238886&Empty=&Flag&a+b=c+d");
  BOOST_REQUIRE_EQUAL(items.size(), 5u);
  BOOST_TEST(items[0].second == "Ol\xC3\xA1");
  BOOST_TEST(items[1].second == "whatsapp:+14155238886");
  BOOST_TEST(items[2].first == "Empty");
  BOOST_TEST(items[2].second.empty());
  BOOST_TEST(items[3].first == "Flag");
  BOOST_TEST(items[4].first == "a b");
  BOOST_TEST(items[4].second == "c d");
}

BOOST_AUTO_TEST_CASE(bad_percent_escapes_are_kept_literally) {
  BOOST_TEST(formDecode("100%") == "100%");
  BOOST_TEST(formDecode("%zz%4") == "%zz%4");
  BOOST_TEST(formDecode("%41") == "A");
}

BOOST_AUTO_TEST_CASE(headers_are_case_insensitive_and_url_is_rebuilt) {
  HttpRequest r;
  r.scheme = "https";
  r.host = "example.org:8443";
  r.path = "/webhooks/twilio";
  r.query = "a=1";
  r.headers.push_back({"X-Twilio-Signature", "abc"});
  BOOST_REQUIRE(r.header("x-twilio-signature") != nullptr);
  BOOST_TEST(*r.header("X-TWILIO-SIGNATURE") == "abc");
  BOOST_TEST(r.header("missing") == nullptr);
  BOOST_TEST(r.url() == "https://example.org:8443/webhooks/twilio?a=1");
}
