// Boost.Test entry point of the hl7v2 suite.
#define BOOST_TEST_MODULE hl7v2
#include <boost/test/unit_test.hpp>
