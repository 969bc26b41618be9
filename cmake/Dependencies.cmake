# Finds the system libraries (Debian 12 packages) and exposes them as deps:: imported targets.
find_package(Threads REQUIRED)
find_package(OpenSSL REQUIRED)
find_package(LibXml2 REQUIRED)
find_package(Poco REQUIRED COMPONENTS Foundation Net NetSSL Util JSON Crypto JWT)

find_path(RAPIDJSON_INCLUDE_DIR rapidjson/document.h REQUIRED)
add_library(deps_rapidjson INTERFACE)
target_include_directories(deps_rapidjson SYSTEM INTERFACE ${RAPIDJSON_INCLUDE_DIR})
# std::string support in RapidJSON's API.
target_compile_definitions(deps_rapidjson INTERFACE RAPIDJSON_HAS_STDSTRING=1)
add_library(deps::rapidjson ALIAS deps_rapidjson)

# Debian's SOCI 4.0.3 ships no CMake config.
find_path(SOCI_INCLUDE_DIR soci/soci.h REQUIRED)
find_library(SOCI_CORE_LIBRARY NAMES soci_core REQUIRED)
find_library(SOCI_SQLITE3_LIBRARY NAMES soci_sqlite3 REQUIRED)
find_library(SOCI_POSTGRESQL_LIBRARY NAMES soci_postgresql REQUIRED)
find_path(SQLITE3_INCLUDE_DIR sqlite3.h)
find_library(SQLITE3_LIBRARY NAMES sqlite3)
find_path(PQ_INCLUDE_DIR libpq-fe.h PATH_SUFFIXES postgresql)
add_library(deps_soci INTERFACE)
target_include_directories(deps_soci SYSTEM INTERFACE ${SOCI_INCLUDE_DIR} ${PQ_INCLUDE_DIR})
target_link_libraries(deps_soci INTERFACE
  ${SOCI_SQLITE3_LIBRARY} ${SOCI_POSTGRESQL_LIBRARY} ${SOCI_CORE_LIBRARY} ${SQLITE3_LIBRARY}
  ${CMAKE_DL_LIBS})
add_library(deps::soci ALIAS deps_soci)
