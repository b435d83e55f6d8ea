# Checks on the bundled trained models (tests/models/model_checks.cpp), native
# only: they read assets/models/* and the corpus encoded with the models'
# tokenizer, which the CTest fixture models.prepare_data writes
# (tests/models/prepare-data: scripts/corpus + `circuitscope encode`, skipped
# when up to date). Registered as models.<Suite>.<Test>.
if(EMSCRIPTEN OR NOT TARGET circuitscope OR NOT TARGET cs_train)
  return()
endif()
include(GoogleTest)
add_executable(model_checks ${CMAKE_SOURCE_DIR}/tests/models/model_checks.cpp)
target_link_libraries(model_checks PRIVATE cs_io cs_train GTest::gtest_main Threads::Threads)
target_compile_options(model_checks PRIVATE ${CS_OPT} -Wall -Wextra)
target_compile_definitions(model_checks PRIVATE CS_SOURCE_DIR="${CMAKE_SOURCE_DIR}")

add_test(NAME models.prepare_data
  COMMAND ${CMAKE_SOURCE_DIR}/tests/models/prepare-data $<TARGET_FILE:circuitscope>
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(models.prepare_data PROPERTIES FIXTURES_SETUP cs_model_data TIMEOUT 900)
gtest_discover_tests(model_checks TEST_PREFIX models. DISCOVERY_TIMEOUT 60
  PROPERTIES FIXTURES_REQUIRED cs_model_data TIMEOUT 600)
