// Boost.Test entry point of the FHIRPath suite.
#define BOOST_TEST_MODULE fhirpath
#include <boost/test/unit_test.hpp>
