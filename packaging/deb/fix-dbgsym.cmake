# Run by cpack after it built the packages (CPACK_POST_BUILD_SCRIPTS): completes each
# <name>-dbgsym_*.ddeb that CPackDeb split off as Debian's own dbgsym packages are made:
#   - DEBIAN/md5sums with paths relative to the root (CMake 3.25 writes the absolute paths of
#     its staging directory, which `dpkg --verify` and lintian reject);
#   - /usr/share/doc/<name>-dbgsym -> <name> (copyright and changelog of the package it
#     depends on, exactly as dh_strip's dbgsym packages do);
#   - the .debug files 0644 (they are not executables).
foreach(package_file IN LISTS CPACK_PACKAGE_FILES)
  get_filename_component(file_name "${package_file}" NAME)
  if(NOT file_name MATCHES "^(.+)-dbgsym_.*\\.ddeb$")
    continue()
  endif()
  set(main_package "${CMAKE_MATCH_1}")
  set(root "${package_file}.d")
  file(REMOVE_RECURSE "${root}")
  execute_process(COMMAND dpkg-deb -R "${package_file}" "${root}" COMMAND_ERROR_IS_FATAL ANY)

  file(GLOB_RECURSE debug_files "${root}/usr/lib/debug/*.debug")
  if(debug_files)
    file(CHMOD ${debug_files} PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  endif()
  file(MAKE_DIRECTORY "${root}/usr/share/doc")
  file(CREATE_LINK "${main_package}" "${root}/usr/share/doc/${main_package}-dbgsym" SYMBOLIC)

  file(GLOB_RECURSE files LIST_DIRECTORIES false RELATIVE "${root}" "${root}/usr/*")
  list(SORT files)
  set(md5sums "")
  foreach(f IN LISTS files)
    if(NOT IS_SYMLINK "${root}/${f}")
      file(MD5 "${root}/${f}" sum)
      string(APPEND md5sums "${sum}  ${f}\n")
    endif()
  endforeach()
  file(WRITE "${root}/DEBIAN/md5sums" "${md5sums}")

  execute_process(COMMAND dpkg-deb --root-owner-group -b "${root}" "${package_file}"
    OUTPUT_QUIET COMMAND_ERROR_IS_FATAL ANY)
  file(REMOVE_RECURSE "${root}")
  message(STATUS "fix-dbgsym: ${file_name}: md5sums, /usr/share/doc/${main_package}-dbgsym")
endforeach()
