# Packaging: install rules for what the packages add to the build (the shipped config, the
# systemd unit, docs, man page, bash completion), the generated configs and docs, and CPack for
# the Debian packages:
#   ferry         the host (/usr/bin/ferry), the in-tree plugins (/usr/lib/ferry/plugins), both
#                 stripped; the config /etc/ferry/ferry.ini (conffile, 0640 root:ferry), the
#                 systemd unit, the maintainer scripts (system user `ferry`, /var/lib/ferry,
#                 /var/spool/ferry), ferry(1), the bash completion, /usr/share/doc/ferry
#   ferry-dev     the SDK: headers incl. version.h, the CMake package Ferry, the example
#   ferry-dbgsym  the debug symbols of ferry's binaries (.ddeb)
# Build them with `cpack -G DEB` in a built tree (the packages always use /usr).
# The Windows installer is built separately (packaging/windows/README.md).
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

# --- Documentation of both packages ------------------------------------------------------------
# The Debian changelog is the packages' version: its latest entry must be for this project's
# version, and its revision is the package release (cpack -D CPACK_DEBIAN_PACKAGE_RELEASE=N
# overrides it for a rebuild).
file(STRINGS ${FERRY_PACKAGING_DIR}/deb/changelog changelog_top LIMIT_COUNT 1)
string(REPLACE "." "\\." version_re "${PROJECT_VERSION}")
if(NOT changelog_top MATCHES "^ferry \\(${version_re}-([0-9]+)\\) ")
  message(FATAL_ERROR "packaging/deb/changelog: its latest entry is '${changelog_top}', but "
    "the project's version is ${PROJECT_VERSION}: add an entry 'ferry (${PROJECT_VERSION}-1) ...' "
    "on top")
endif()
set(FERRY_DEBIAN_RELEASE ${CMAKE_MATCH_1})

# Generated at build time: the man page and the bash completion from the built ferry's own help
# (`ferry --help`, `ferry help COMMAND`), so they list exactly the commands and options it has
# (not in a cross build, which cannot run its ferry: they belong to the Debian packages); the
# changelog compressed as Debian wants it (gzip -9n: reproducible).
find_package(Python3 REQUIRED COMPONENTS Interpreter)
set(doc_out ${FERRY_PACKAGING_BINARY_DIR}/deb)
add_custom_command(OUTPUT ${doc_out}/changelog.Debian.gz
  COMMAND Python3::Interpreter ${FERRY_PACKAGING_DIR}/tools/gzip_n.py
    ${FERRY_PACKAGING_DIR}/deb/changelog ${doc_out}/changelog.Debian.gz
  DEPENDS ${FERRY_PACKAGING_DIR}/deb/changelog ${FERRY_PACKAGING_DIR}/tools/gzip_n.py
  VERBATIM)
set(generated_docs ${doc_out}/changelog.Debian.gz)
if(NOT CMAKE_CROSSCOMPILING)
  add_custom_command(OUTPUT ${doc_out}/ferry.1.gz ${doc_out}/completion/ferry
    COMMAND ${CMAKE_COMMAND} -E make_directory ${doc_out}/completion
    COMMAND Python3::Interpreter ${FERRY_PACKAGING_DIR}/tools/ferry_cli_docs.py
      --ferry $<TARGET_FILE:ferry> --changelog ${FERRY_PACKAGING_DIR}/deb/changelog
      --man ${doc_out}/ferry.1.gz --completion ${doc_out}/completion/ferry
    DEPENDS ferry ${FERRY_PACKAGING_DIR}/tools/ferry_cli_docs.py
      ${FERRY_PACKAGING_DIR}/tools/gzip_n.py ${FERRY_PACKAGING_DIR}/deb/changelog
    COMMENT "Generating ferry(1) and the bash completion from ferry --help"
    VERBATIM)
  list(APPEND generated_docs ${doc_out}/ferry.1.gz ${doc_out}/completion/ferry)
  install(FILES ${doc_out}/ferry.1.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT runtime)
  install(FILES ${doc_out}/completion/ferry
    DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions COMPONENT runtime)
endif()
add_custom_target(ferry_package_docs ALL DEPENDS ${generated_docs})

# Both packages: /usr/share/doc/<package>/{copyright (DEP-5), LICENSE, changelog.Debian.gz}.
foreach(pkg ferry ferry-dev)
  if(pkg STREQUAL "ferry")
    set(component runtime)
  else()
    set(component dev)
  endif()
  install(FILES ${FERRY_PACKAGING_DIR}/deb/copyright ${CMAKE_SOURCE_DIR}/LICENSE
    ${doc_out}/changelog.Debian.gz DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/${pkg}
    COMPONENT ${component})
endforeach()
# ferry: README.md, every plugin's README, sdk/README.md, packaging/README.md and
# packaging/windows/README.md (the main README's Windows section links to it) at their paths in
# the repository (their links to each other keep working), the example configs in examples/ (and
# config -> examples: the READMEs link to config/*.ini), the lintian overrides.
set(doc_dir ${CMAKE_INSTALL_DATADIR}/doc/ferry)
install(FILES ${CMAKE_SOURCE_DIR}/README.md DESTINATION ${doc_dir} COMPONENT runtime)
file(GLOB plugin_readmes RELATIVE ${CMAKE_SOURCE_DIR} CONFIGURE_DEPENDS
  ${CMAKE_SOURCE_DIR}/plugins/*/README.md)
foreach(readme ${plugin_readmes} sdk/README.md packaging/README.md packaging/windows/README.md)
  get_filename_component(dir ${readme} DIRECTORY)
  install(FILES ${CMAKE_SOURCE_DIR}/${readme} DESTINATION ${doc_dir}/${dir} COMPONENT runtime)
endforeach()
file(GLOB example_configs CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/config/*.ini)
install(FILES ${example_configs} DESTINATION ${doc_dir}/examples COMPONENT runtime)
file(MAKE_DIRECTORY ${doc_out}/links)
file(CREATE_LINK examples ${doc_out}/links/config SYMBOLIC)
install(FILES ${doc_out}/links/config DESTINATION ${doc_dir} COMPONENT runtime)
install(FILES ${FERRY_PACKAGING_DIR}/deb/lintian-overrides
  DESTINATION ${CMAKE_INSTALL_DATADIR}/lintian/overrides RENAME ferry COMPONENT runtime)
# ferry-dev: the SDK's README is the one ferry ships (ferry-dev depends on the same ferry).
file(CREATE_LINK ../ferry/sdk/README.md ${doc_out}/links/README.md SYMBOLIC)
install(FILES ${doc_out}/links/README.md DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/ferry-dev
  COMPONENT dev)
install(FILES ${FERRY_PACKAGING_DIR}/deb/lintian-overrides.dev
  DESTINATION ${CMAKE_INSTALL_DATADIR}/lintian/overrides RENAME ferry-dev COMPONENT dev)

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
# Stripped binaries, debug symbols in ferry-dbgsym: CPackDeb splits every unstripped ELF file of
# the `ferry` package (the host and the plugins) with objcopy into
# /usr/lib/debug/.build-id/<xx>/<rest>.debug of ferry-dbgsym_<version>_<arch>.ddeb and strips it
# (--strip-unneeded, with a .gnu_debuglink). So CPACK_STRIP_FILES stays OFF: CPack must see them
# unstripped. ferry-dev holds no ELF file to split (libferry_mapping.a is an archive).
set(CPACK_STRIP_FILES OFF)
set(CPACK_DEBIAN_RUNTIME_DEBUGINFO_PACKAGE ON)
set(CPACK_POST_BUILD_SCRIPTS ${FERRY_PACKAGING_DIR}/deb/fix-dbgsym.cmake)

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

set(CPACK_DEBIAN_PACKAGE_RELEASE ${FERRY_DEBIAN_RELEASE})  # packaging/deb/changelog
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)

set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME ferry)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION net)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_DEPENDS "adduser, ca-certificates")
set(CPACK_DEBIAN_RUNTIME_DESCRIPTION "integration host moving order and shipment changes into ERPs
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
