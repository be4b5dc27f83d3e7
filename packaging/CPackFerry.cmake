# Packaging: install rules for what the packages add to the build (the shipped config, the
# systemd unit, docs), the generated configs, and CPack for two Debian packages:
#   ferry      the host (/usr/bin/ferry), the in-tree plugins (/usr/lib/ferry/plugins), the
#              config /etc/ferry/ferry.ini (conffile, 0640 root:ferry), the systemd unit and the
#              maintainer scripts (system user `ferry`, /var/lib/ferry, /var/spool/ferry)
#   ferry-dev  the SDK: headers incl. version.h, the CMake package Ferry, the example
# Build them with `cpack -G DEB` in a build configured with -DCMAKE_INSTALL_PREFIX=/usr.
# The Windows installer is built separately (packaging/msi/README.md).
#
# Install components: the host and plugins have none ("Unspecified"); `runtime` is what this file
# adds for the host; `dev` is the SDK (sdk/CMakeLists.txt). Every component except `dev` goes into
# the `ferry` package, so a component added elsewhere later lands there too.
include_guard(GLOBAL)
set(FERRY_PACKAGING_DIR ${CMAKE_CURRENT_LIST_DIR})
set(FERRY_PACKAGING_BINARY_DIR ${CMAKE_BINARY_DIR}/packaging)

# --- The shipped configuration, generated from the plugins' option tables ----------------------
get_property(FERRY_INSTALLED_PLUGINS GLOBAL PROPERTY FERRY_INSTALLED_PLUGINS)
add_executable(ferry_gen_config ${FERRY_PACKAGING_DIR}/tools/ferry_gen_config.cpp)
target_link_libraries(ferry_gen_config PRIVATE ferry_config ferry_loader)
set_target_properties(ferry_gen_config PROPERTIES
  RUNTIME_OUTPUT_DIRECTORY ${FERRY_PACKAGING_BINARY_DIR})
set(plugin_files)
foreach(p ${FERRY_INSTALLED_PLUGINS})
  list(APPEND plugin_files $<TARGET_FILE:${p}>)
endforeach()
foreach(flavour deb msi)
  add_custom_command(OUTPUT ${FERRY_PACKAGING_BINARY_DIR}/${flavour}/ferry.ini
    COMMAND ${CMAKE_COMMAND} -E make_directory ${FERRY_PACKAGING_BINARY_DIR}/${flavour}
    COMMAND ferry_gen_config --out ${FERRY_PACKAGING_BINARY_DIR}/${flavour}/ferry.ini
      --head ${FERRY_PACKAGING_DIR}/${flavour}/ferry.ini.head
      --hints ${FERRY_PACKAGING_DIR}/${flavour}/ferry.ini.hints
      ${plugin_files}
    DEPENDS ferry_gen_config ${FERRY_INSTALLED_PLUGINS}
      ${FERRY_PACKAGING_DIR}/${flavour}/ferry.ini.head
      ${FERRY_PACKAGING_DIR}/${flavour}/ferry.ini.hints
    COMMENT "Generating the shipped ${flavour} ferry.ini from the plugins' option tables"
    VERBATIM)
endforeach()
add_custom_target(ferry_shipped_config ALL DEPENDS
  ${FERRY_PACKAGING_BINARY_DIR}/deb/ferry.ini ${FERRY_PACKAGING_BINARY_DIR}/msi/ferry.ini)
# The plugin names, one a line, for the MSI's plugin components (packaging/msi/build-msi.sh).
string(REPLACE ";" "\n" plugin_lines "${FERRY_INSTALLED_PLUGINS}")
file(GENERATE OUTPUT ${FERRY_PACKAGING_BINARY_DIR}/msi/plugins.txt CONTENT "${plugin_lines}\n")

# --- Install rules of the `ferry` package -------------------------------------------------------
# Absolute destinations: /etc and /lib/systemd are outside the /usr prefix.
install(FILES ${FERRY_PACKAGING_BINARY_DIR}/deb/ferry.ini DESTINATION /etc/ferry
  PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ COMPONENT runtime)
install(FILES ${FERRY_PACKAGING_DIR}/deb/ferry.service DESTINATION /lib/systemd/system
  COMPONENT runtime)
install(FILES ${CMAKE_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/ferry
  COMPONENT runtime)

# --- CPack ---------------------------------------------------------------------------------------
set(CPACK_PACKAGE_NAME ferry)
set(CPACK_PACKAGE_VENDOR "Ferry")
set(CPACK_PACKAGE_CONTACT "Ferry maintainers <ferry@example.org>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_HOMEPAGE_URL "https://example.org/ferry")
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_DIRECTORY ${CMAKE_BINARY_DIR}/packages)
# The Debian layout whatever CMAKE_INSTALL_PREFIX the build tree has (scripts/build uses the
# default): relative destinations land under /usr.
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES OFF)

get_cmake_property(ferry_components COMPONENTS)
list(APPEND ferry_components runtime dev)
list(REMOVE_DUPLICATES ferry_components)
set(CPACK_COMPONENTS_ALL ${ferry_components})
foreach(c ${ferry_components})
  if(c STREQUAL "dev")
    set(CPACK_COMPONENT_${c}_GROUP dev)
  else()
    string(TOUPPER "${c}" C)
    set(CPACK_COMPONENT_${C}_GROUP runtime)
    set(CPACK_COMPONENT_${c}_GROUP runtime)
  endif()
endforeach()
set(CPACK_COMPONENT_DEV_GROUP dev)
set(CPACK_COMPONENTS_GROUPING ONE_PER_GROUP)
set(CPACK_DEB_COMPONENT_INSTALL ON)

set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)

set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME ferry)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION net)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_DEPENDS "adduser, ca-certificates")
set(CPACK_DEBIAN_RUNTIME_DESCRIPTION "Ferry integration host
Polls business platforms (Tradecloud, DuckHub) for changed orders and
shipments, journals every change durably and delivers it to ERP CSV drop
folders, SQL databases and REST endpoints. Runs as the systemd service
ferry; configure it in /etc/ferry/ferry.ini.")
set(CPACK_DEBIAN_RUNTIME_PACKAGE_CONTROL_EXTRA
  ${FERRY_PACKAGING_DIR}/deb/conffiles
  ${FERRY_PACKAGING_DIR}/deb/postinst
  ${FERRY_PACKAGING_DIR}/deb/prerm
  ${FERRY_PACKAGING_DIR}/deb/postrm)

set(CPACK_DEBIAN_DEV_PACKAGE_NAME ferry-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION devel)
# Architecture-dependent since it ships the static mapping library (libferry_mapping.a), which
# links simdjson.
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS "libsimdjson-dev")
set(CPACK_DEBIAN_DEV_PACKAGE_SHLIBDEPS OFF)
# ferry (= <version>-<release>): set by CPackFerryProject.cmake at cpack time.
set(CPACK_PROJECT_CONFIG_FILE ${FERRY_PACKAGING_DIR}/CPackFerryProject.cmake)
set(CPACK_DEBIAN_DEV_PACKAGE_RECOMMENDS
  "cmake (>= 3.25), g++ (>= 4:12), make | ninja-build, libgtest-dev")
set(CPACK_DEBIAN_DEV_DESCRIPTION "Ferry plugin SDK
Headers (C ABI and header-only C++ wrapper), the field mapping library
of the CSV and SQL sinks (Ferry::mapping), the fake host to unit-test a
plugin in-process (Ferry::testing), the CMake package Ferry with
ferry_add_plugin(), and an example sink with its unit test
(/usr/share/doc/ferry-dev/examples) to build Ferry plugins out of tree.")

include(CPack)
