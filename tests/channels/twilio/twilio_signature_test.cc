// X-Twilio-Signature primitives against the protocols.md vectors (recomputed with Python hmac).
#include <boost/test/unit_test.hpp>

#include "channels/twilio/twilio_signature.h"

using namespace switchboard::channels::twilio;

namespace {
const Params kCanonical = {{"CallSid", "CA1234567890ABCDE"},
                           {"Caller", "+14158675309"},
                           {"Digits", "1234"},
                           {"From", "+14158675309"},
                           {"To", "+18005551212"}};
}

BOOST_AUTO_TEST_SUITE(signature)

BOOST_AUTO_TEST_CASE(canonical_vector) {
  const std::string url = "https://mycompany.com/myapp.php?foo=1&bar=2";
  BOOST_TEST(signingString(url, kCanonical) ==
             "https://mycompany.com/myapp.php?foo=1&bar=2CallSidCA1234567890ABCDECaller+14158675309"
             "Digits1234From+14158675309To+18005551212");
  BOOST_TEST(computeSignature("12345", url, kCanonical) == "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
}

BOOST_AUTO_TEST_CASE(older_documented_vector) {
  const Params params = {{"Digits", "1234"},
                         {"To", "+18005551212"},
                         {"From", "+12349013030"},
                         {"Caller", "+12349013030"},
                         {"CallSid", "CA1234567890ABCDE"}};  // order received does not matter
  BOOST_TEST(computeSignature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", params) ==
             "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
}

BOOST_AUTO_TEST_CASE(wrong_token_or_url_changes_the_signature) {
  const std::string url = "https://mycompany.com/myapp.php?foo=1&bar=2";
  BOOST_TEST(computeSignature("12346", url, kCanonical) != "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
  BOOST_TEST(computeSignature("12345", "https://mycompany.com:443/myapp.php?foo=1&bar=2",
                              kCanonical) != "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
}

BOOST_AUTO_TEST_CASE(repeated_names_sign_each_distinct_value_sorted) {
  const Params params = {{"b", "2"}, {"a", "z"}, {"b", "1"}, {"b", "2"}, {"A", "0"}};
  BOOST_TEST(signingString("u", params) == "uA0azb1b2");
}

BOOST_AUTO_TEST_CASE(names_sort_by_code_point_not_locale) {
  const Params params = {{"\xC3\xA9", "e-acute"}, {"z", "1"}, {"Z", "2"}, {"_", "3"}};
  BOOST_TEST(signingString("", params) ==
             "Z2_3z1\xC3\xA9"
             "e-acute");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(url_variants)

BOOST_AUTO_TEST_CASE(default_port_added_and_removed) {
  auto v = signatureUrlVariants("https://mycompany.com/myapp.php?foo=1&bar=2");
  BOOST_REQUIRE_EQUAL(v.size(), 2u);
  BOOST_TEST(v[0] == "https://mycompany.com:443/myapp.php?foo=1&bar=2");
  BOOST_TEST(v[1] == "https://mycompany.com/myapp.php?foo=1&bar=2");
  auto h = signatureUrlVariants("http://example.org/hook");
  BOOST_REQUIRE_EQUAL(h.size(), 2u);
  BOOST_TEST(h[0] == "http://example.org:80/hook");
  BOOST_TEST(h[1] == "http://example.org/hook");
}

BOOST_AUTO_TEST_CASE(explicit_port_kept_and_stripped) {
  auto v = signatureUrlVariants("http://127.0.0.1:8080/webhooks/twilio?x=1");
  BOOST_REQUIRE_EQUAL(v.size(), 2u);
  BOOST_TEST(v[0] == "http://127.0.0.1:8080/webhooks/twilio?x=1");
  BOOST_TEST(v[1] == "http://127.0.0.1/webhooks/twilio?x=1");
}

BOOST_AUTO_TEST_CASE(userinfo_ipv6_and_bare_host) {
  auto u = signatureUrlVariants("https://user:p%40ss@example.org/p");
  BOOST_REQUIRE_EQUAL(u.size(), 2u);
  BOOST_TEST(u[0] == "https://user:p%40ss@example.org:443/p");
  BOOST_TEST(u[1] == "https://user:p%40ss@example.org/p");
  auto six = signatureUrlVariants("http://[::1]:8080/p");
  BOOST_REQUIRE_EQUAL(six.size(), 2u);
  BOOST_TEST(six[0] == "http://[::1]:8080/p");
  BOOST_TEST(six[1] == "http://[::1]/p");
  auto bare = signatureUrlVariants("https://example.org");
  BOOST_REQUIRE_EQUAL(bare.size(), 2u);
  BOOST_TEST(bare[0] == "https://example.org:443");
  BOOST_TEST(bare[1] == "https://example.org");
}

BOOST_AUTO_TEST_CASE(unsplittable_url_is_returned_alone) {
  auto v = signatureUrlVariants("not a url");
  BOOST_REQUIRE_EQUAL(v.size(), 1u);
  BOOST_TEST(v[0] == "not a url");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_CASE(sha256_hex_and_constant_time_compare) {
  BOOST_TEST(sha256Hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  BOOST_TEST(sha256Hex("abc") ==
             "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  BOOST_TEST(constantTimeEquals("abc", "abc"));
  BOOST_TEST(!constantTimeEquals("abc", "abd"));
  BOOST_TEST(!constantTimeEquals("abc", "abcd"));
  BOOST_TEST(!constantTimeEquals("", "a"));
}
