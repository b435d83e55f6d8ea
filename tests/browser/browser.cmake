# Browser tests of the page (node --test + playwright-core + /usr/bin/chromium),
# included by tests/native.cmake. They serve ${CIRCUITSCOPE_WASM_DIR}/dist
# (build it first: cmake --build <wasm dir> --target circuitscope_page) and
# compare with the native CLI. Skipped when CIRCUITSCOPE_WASM_DIR is empty.
if(NOT CIRCUITSCOPE_WASM_DIR OR NOT TARGET circuitscope)
  return()
endif()
find_program(CIRCUITSCOPE_NODE node)
if(NOT CIRCUITSCOPE_NODE)
  message(WARNING "node not found: browser tests not registered")
  return()
endif()
foreach(_t page_load file_input drop bigram_cli bad_file interaction jobs circuits_cli two_layer_cli virtual_cli prompt_cli static_hosting link pth offline export report faults missing_tokenizer too_large out_of_memory context_loss load_leak train)
  add_test(NAME browser.${_t}
           COMMAND ${CIRCUITSCOPE_NODE} --test ${CMAKE_SOURCE_DIR}/tests/browser/${_t}.test.mjs
           WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(browser.${_t} PROPERTIES
    ENVIRONMENT "CIRCUITSCOPE_DIST=${CIRCUITSCOPE_WASM_DIR}/dist;CIRCUITSCOPE_CLI=$<TARGET_FILE:circuitscope>"
    TIMEOUT 240
    RESOURCE_LOCK chromium)
endforeach()
# The Train view trains the repeated-tokens preset to its induction head in the page.
set_tests_properties(browser.train PROPERTIES TIMEOUT 900)
