# What `cmake --install` puts where (GNU layout under CMAKE_INSTALL_PREFIX; /usr for a system install), and the
# Debian package ci/package.sh builds from the same rules with CPack.
include(GNUInstallDirs)
set(BERTH_PACKAGE_MAINTAINER "berth maintainers <berth@localhost>" CACHE STRING "Maintainer: of the Debian package")

install(TARGETS berth RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
if(BERTH_DOCS)
  install(DIRECTORY ${BERTH_DOCS_DIR}/man/ DESTINATION ${CMAKE_INSTALL_MANDIR})
  install(FILES ${BERTH_DOCS_DIR}/completions/berth DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions)
  install(FILES ${BERTH_DOCS_DIR}/completions/_berth DESTINATION ${CMAKE_INSTALL_DATADIR}/zsh/vendor-completions)
  install(FILES ${BERTH_DOCS_DIR}/completions/berth.fish
          DESTINATION ${CMAKE_INSTALL_DATADIR}/fish/vendor_completions.d)
endif()

# The systemd unit names the installed binary (contrib/berth.service is written for /usr/bin/berth): written at
# install time, so `cmake --install --prefix` and CPack's prefix are the ones it names.
set(BERTH_SYSTEMD_UNIT_DIR "lib/systemd/system" CACHE STRING "Where the systemd unit goes (relative: under the prefix)")
install(CODE "
  file(READ \"${CMAKE_SOURCE_DIR}/contrib/berth.service\" unit)
  string(REPLACE \"/usr/bin/berth \" \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}/berth \" unit \"\${unit}\")
  file(WRITE \"${CMAKE_BINARY_DIR}/contrib/berth.service\" \"\${unit}\")
")
install(FILES ${CMAKE_BINARY_DIR}/contrib/berth.service DESTINATION ${BERTH_SYSTEMD_UNIT_DIR})

# The documents the unit and the man pages point at.
install(FILES ${CMAKE_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY ${CMAKE_SOURCE_DIR}/docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR} FILES_MATCHING PATTERN "*.md"
        PATTERN "benchmarks*" EXCLUDE)

# A native package's changelog (Debian policy 12.7): one entry naming the commit, dated by it, so a rebuild of the
# same commit makes the same file.
find_package(Git QUIET)
set(berth_commit_date "Thu, 01 Jan 1970 00:00:00 +0000")
if(GIT_FOUND)
  execute_process(COMMAND ${GIT_EXECUTABLE} log -1 --format=%aD WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}
                  OUTPUT_VARIABLE git_date OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE git_rc)
  if(git_rc EQUAL 0 AND NOT git_date STREQUAL "")
    set(berth_commit_date "${git_date}")
  endif()
endif()
file(CONFIGURE OUTPUT ${CMAKE_BINARY_DIR}/debian/changelog CONTENT
     "berth (${PROJECT_VERSION}) unstable; urgency=medium\n\n  * Built from commit ${berth_commit}.\n\n -- ${BERTH_PACKAGE_MAINTAINER}  ${berth_commit_date}\n")
find_program(GZIP gzip)
if(GZIP)
  execute_process(COMMAND ${GZIP} -9nc ${CMAKE_BINARY_DIR}/debian/changelog
                  OUTPUT_FILE ${CMAKE_BINARY_DIR}/debian/changelog.gz)
  install(FILES ${CMAKE_BINARY_DIR}/debian/changelog.gz DESTINATION ${CMAKE_INSTALL_DOCDIR})
endif()

# ---- the Debian package (cpack -G DEB; ci/package.sh) ----
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME berth)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "${BERTH_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "self-hosted executor for infrastructure tasks")
# the extended description: CPack indents each line under the summary
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "berth runs commands (terraform plan, ansible-playbook ...) against named stacks\n"
    "in fresh, hardened Docker containers, streams their output live with every\n"
    "secret masked, and records every transition, log line and state file. It\n"
    "comes as a command line and an HTTP API server (berth.service).")
string(REPLACE ";" "" CPACK_DEBIAN_PACKAGE_DESCRIPTION "${CPACK_DEBIAN_PACKAGE_DESCRIPTION}")
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT) # berth_VERSION_ARCH.deb
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
# Depends: the shared libraries berth links, as dpkg-shlibdeps finds them, and adduser for the maintainer scripts.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "docker.io | docker-ce")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${CMAKE_SOURCE_DIR}/contrib/debian/postinst ${CMAKE_SOURCE_DIR}/contrib/debian/prerm
    ${CMAKE_SOURCE_DIR}/contrib/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_THREADS 2)
include(CPack)
