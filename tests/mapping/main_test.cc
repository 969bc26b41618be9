// Boost.Test entry point of mapping_tests.
#define BOOST_TEST_MODULE mapping_tests
#include <boost/test/unit_test.hpp>
