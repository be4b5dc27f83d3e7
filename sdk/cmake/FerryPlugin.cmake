# ferry_add_plugin(<name> SOURCES <file>... [OUTPUT_DIRECTORY <dir>] [NO_INSTALL])
#
# Builds a Ferry plugin: a MODULE library named exactly <name>.so (<name>.dll on Windows; no "lib"
# prefix) that links the SDK, exports only the entry symbol, and is built with -fno-gnu-unique so
# that unloading it is real (see the SDK README). In-tree plugins and outsiders' plugins use this
# same function.
#
#   OUTPUT_DIRECTORY  where the library is written (default: FERRY_PLUGIN_OUTPUT_DIR when set,
#                     else the current binary dir)
#   NO_INSTALL        do not install it (test plugins)
#
# Installed (`install(TARGETS … DESTINATION ${FERRY_PLUGIN_INSTALL_DIR})`) only when
# FERRY_PLUGIN_INSTALL_DIR is set: in Ferry's own tree it is lib/ferry/plugins (the `ferry`
# package); an out-of-tree project may set it, e.g. to ${FERRY_PLUGIN_DIR} from find_package(Ferry).
# Every installed plugin is also listed in the global property FERRY_INSTALLED_PLUGINS (the
# packaging generates the shipped config and the MSI's plugin list from it).
include_guard(GLOBAL)

function(ferry_add_plugin name)
  cmake_parse_arguments(ARG "NO_INSTALL" "OUTPUT_DIRECTORY" "SOURCES" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "ferry_add_plugin(${name}): SOURCES is required")
  endif()
  add_library(${name} MODULE ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE Ferry::sdk)
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    CXX_VISIBILITY_PRESET hidden
    C_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(${name} PRIVATE -fno-gnu-unique)
  endif()
  if(ARG_OUTPUT_DIRECTORY)
    set(out ${ARG_OUTPUT_DIRECTORY})
  elseif(DEFINED FERRY_PLUGIN_OUTPUT_DIR)
    set(out ${FERRY_PLUGIN_OUTPUT_DIR})
  else()
    set(out ${CMAKE_CURRENT_BINARY_DIR})
  endif()
  set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${out})
  if(NOT ARG_NO_INSTALL AND DEFINED FERRY_PLUGIN_INSTALL_DIR)
    install(TARGETS ${name} LIBRARY DESTINATION ${FERRY_PLUGIN_INSTALL_DIR})
    set_property(GLOBAL APPEND PROPERTY FERRY_INSTALLED_PLUGINS ${name})
  endif()
endfunction()
