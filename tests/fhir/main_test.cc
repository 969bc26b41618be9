// Boost.Test entry point of the engine/fhir suite.
#define BOOST_TEST_MODULE fhir
#include <boost/test/unit_test.hpp>
