# Generates berth's man pages and shell completions from the built binary itself (cmake -P; run by the build):
#   cmake -DBERTH=path/to/berth -DOUT=dir -P cmake/berth-docs.cmake
# writes OUT/man/man1/PAGE.1.gz for every page `berth __man --list` names (berth(1) and one per command group,
# made of the command table and the commands' --help), and OUT/completions/{berth,_berth,berth.fish} from
# `berth completion bash|zsh|fish`. Nothing here lists commands: a new group gets its page from the table.
cmake_minimum_required(VERSION 3.18)
foreach(var BERTH OUT)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "berth-docs.cmake: set -D${var}=...")
  endif()
endforeach()
find_program(GZIP gzip REQUIRED)

# run(OUTPUT_FILE args...): berth args... > OUTPUT_FILE, failing the build when berth fails
function(run output)
  execute_process(COMMAND ${CMAKE_COMMAND} -E env --unset=BERTH_SERVER NO_COLOR=1 ASAN_OPTIONS=detect_leaks=0
                          ${BERTH} ${ARGN}
                  OUTPUT_FILE ${output} ERROR_VARIABLE err RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "berth ${ARGN} failed (${rc}): ${err}")
  endif()
endfunction()

file(REMOVE_RECURSE ${OUT}/man ${OUT}/completions)
file(MAKE_DIRECTORY ${OUT}/man/man1 ${OUT}/completions)
run(${OUT}/pages.txt __man --list)
file(STRINGS ${OUT}/pages.txt pages)
foreach(page ${pages})
  if(page STREQUAL "berth")
    run(${OUT}/man/man1/${page}.1 __man)
  else()
    string(REGEX REPLACE "^berth-" "" group "${page}")
    run(${OUT}/man/man1/${page}.1 __man ${group})
  endif()
  # -n: no name or time stamp in the file, so the package is reproducible
  execute_process(COMMAND ${GZIP} -9nf ${OUT}/man/man1/${page}.1 RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "gzip ${page}.1 failed")
  endif()
endforeach()
run(${OUT}/completions/berth completion bash)
run(${OUT}/completions/_berth completion zsh)
run(${OUT}/completions/berth.fish completion fish)
file(REMOVE ${OUT}/pages.txt)
file(TOUCH ${OUT}/.stamp)
