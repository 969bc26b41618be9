// Known answers of the name-based UUIDs and the SHA-1 hex digests: every mapped fullUrl and input
// key depends on them, so they must not change with how the digest is computed.
#include <boost/test/unit_test.hpp>

#include <string>

#include "engine/mapping/uuid.h"

namespace switchboard::mapping {

BOOST_AUTO_TEST_SUITE(uuid)

// Values of Python's uuid.uuid5(UUID("f54cdbb8-4031-55a2-b66d-a2b3facc92af"), name): names
// within one block, across the first block's end and over several blocks.
BOOST_AUTO_TEST_CASE(name_uuids_are_rfc4122_version_5) {
  BOOST_TEST(nameUuid("") == "aa2334c9-4f20-5183-a972-3c6d88c9142f");
  BOOST_TEST(nameUuid("Patient/x") == "13d14c63-e87a-5a29-bdf1-e7c3ec21501d");
  BOOST_TEST(nameUuid(std::string(47, 'a')) == "3faca35b-ee3f-50ed-9395-e5514a78b708");
  BOOST_TEST(nameUuid(std::string(48, 'a')) == "beec3c37-5aed-5953-bec3-8004dd1a1601");
  BOOST_TEST(nameUuid(std::string(130, 'b')) == "674e552c-274b-5f8b-ae68-dd23323edb5a");
  char out[37] = {};
  writeNameUuid("Patient/x", out);
  BOOST_TEST(std::string(out) == "13d14c63-e87a-5a29-bdf1-e7c3ec21501d");
}

BOOST_AUTO_TEST_CASE(sha1_hex_digests) {
  BOOST_TEST(sha1Hex("") == "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  BOOST_TEST(sha1Hex("abc") == "a9993e364706816aba3e25717850c26c9cd0d89d");
  BOOST_TEST(sha1Hex(std::string(200, 'x')) == "94218caae9904e93a3d7bf578bf4791926fc5e82");
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace switchboard::mapping
