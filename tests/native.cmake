# Native-only tests and benchmarks (included by the root CMakeLists.txt for
# native builds):
#   cli.*             the `circuitscope` command line (tests/cli/cli.test.mjs, node --test)
#   train.*           `circuitscope train` (tests/train/*.test.mjs, node --test)
#   cross.*           native vs wasm (circuitscope-node.js from CIRCUITSCOPE_WASM_DIR), when that is set
#   bench_native      Google Benchmark (tests/bench/bench_native.cpp, bench_train.cpp); run by scripts/bench, not by CTest
#   browser tests     tests/browser/browser.cmake (the page's), when present
#   models.*          checks on the bundled trained models (tests/models/models.cmake)
set(CIRCUITSCOPE_WASM_DIR "" CACHE PATH "wasm build dir for native-vs-wasm and browser tests")

find_program(CS_NODE node)

if(TARGET circuitscope AND CS_NODE)
  # One CTest per file of tests/cli, with the binary and the sources in its environment.
  function(cs_cli_test name file timeout)
    add_test(NAME cli.${name} COMMAND ${CS_NODE} --test ${CMAKE_SOURCE_DIR}/tests/cli/${file}.test.mjs)
    set_tests_properties(cli.${name} PROPERTIES
      ENVIRONMENT "CIRCUITSCOPE_BIN=$<TARGET_FILE:circuitscope>;CIRCUITSCOPE_SOURCE_DIR=${CMAKE_SOURCE_DIR}"
      TIMEOUT ${timeout})
  endfunction()
  cs_cli_test(commands cli 300)
  # tokenizer-train and encode on a tiny corpus
  cs_cli_test(corpus corpus 120)
  # `circuitscope convert`: a checkpoint to the bundled-model files
  cs_cli_test(convert convert 120)
  # heads / ov / qk / skip-trigrams against dense circuits computed in the test
  cs_cli_test(circuits circuits 300)
  # composition and detect against dense products and patterns computed in the test
  cs_cli_test(two_layer two_layer 300)
  # `circuitscope report`: each section equals its own command's JSON
  cs_cli_test(report report 600)
  # --threads N: the same output on any number of threads
  cs_cli_test(threads threads 600)
  # PyTorch checkpoints against their safetensors twins, hostile ones refused
  cs_cli_test(pth pth 120)
  # `circuitscope train`: checkpoints, resume, Ctrl-C, NaN, bad input (tests/train/train.test.mjs);
  # train.induction_forms: a 2-layer model trained on repeated random tokens grows an induction head.
  foreach(t cli induction_forms)
    add_test(NAME train.${t} COMMAND ${CS_NODE} --test ${CMAKE_SOURCE_DIR}/tests/train/${t}.test.mjs)
    set_tests_properties(train.${t} PROPERTIES
      ENVIRONMENT "CIRCUITSCOPE_BIN=$<TARGET_FILE:circuitscope>;CIRCUITSCOPE_SOURCE_DIR=${CMAKE_SOURCE_DIR}"
      TIMEOUT 300)
  endforeach()

  if(CIRCUITSCOPE_WASM_DIR)
    # The Node build of the CLI comes from the wasm build tree (root CMakeLists:
    # target circuitscope, OUTPUT_NAME circuitscope-node); the test reports a
    # missing file as a failure rather than skipping.
    add_test(NAME cross.native_vs_wasm
      COMMAND ${CS_NODE} --test ${CMAKE_SOURCE_DIR}/tests/cli/native_vs_wasm.test.mjs)
    set_tests_properties(cross.native_vs_wasm PROPERTIES
      ENVIRONMENT "CIRCUITSCOPE_BIN=$<TARGET_FILE:circuitscope>;CIRCUITSCOPE_SOURCE_DIR=${CMAKE_SOURCE_DIR};CIRCUITSCOPE_WASM_JS=${CIRCUITSCOPE_WASM_DIR}/circuitscope-node.js"
      TIMEOUT 300)
  endif()
elseif(TARGET circuitscope)
  message(WARNING "node not found: CLI tests are not registered")
endif()

# ---- sanitizer and fuzzing builds: the fuzz targets; no benchmarks, browser or model checks
if(CIRCUITSCOPE_SANITIZE OR CIRCUITSCOPE_FUZZ)
  include(${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz.cmake)
  return()
endif()

# ---- benchmarks (Google Benchmark, Debian libbenchmark-dev) ----------------
find_package(benchmark CONFIG QUIET)
if(benchmark_FOUND)
  # Not in `all`: scripts/bench builds it by name; the tests never need it.
  add_executable(bench_native EXCLUDE_FROM_ALL ${CMAKE_SOURCE_DIR}/tests/bench/bench_native.cpp
                              ${CMAKE_SOURCE_DIR}/tests/bench/bench_common.cpp
                              ${CMAKE_SOURCE_DIR}/tests/bench/bench_train.cpp)
  target_link_libraries(bench_native PRIVATE cs_io ${CS_TRAIN_LIB} benchmark::benchmark Threads::Threads)
  target_compile_options(bench_native PRIVATE ${CS_OPT} -Wall -Wextra)
else()
  message(STATUS "Google Benchmark not found: bench_native is not built")
endif()

include(${CMAKE_SOURCE_DIR}/tests/browser/browser.cmake OPTIONAL)
include(${CMAKE_SOURCE_DIR}/tests/models/models.cmake)
