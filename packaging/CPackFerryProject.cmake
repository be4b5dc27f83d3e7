# Read by cpack at packaging time (CPACK_PROJECT_CONFIG_FILE): values that must follow what
# cpack is actually building, e.g. `cpack -D CPACK_DEBIAN_PACKAGE_RELEASE=2`.
if(CPACK_GENERATOR STREQUAL "DEB")
  set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS
      "ferry (= ${CPACK_PACKAGE_VERSION}-${CPACK_DEBIAN_PACKAGE_RELEASE})")
endif()
# Each package's description starts with its own synopsis line; CPackDeb would prepend the
# project's summary (from project(DESCRIPTION)) unless it equals CPack's default.
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${CPACK_DEFAULT_PACKAGE_DESCRIPTION_SUMMARY}")
