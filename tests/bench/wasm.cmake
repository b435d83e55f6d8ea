# bench_wasm: the benchmarks' operations under Node (wasm build only; built on
# demand by scripts/bench: `cmake --build build-wasm --target bench_wasm`).
add_executable(bench_wasm EXCLUDE_FROM_ALL ${CMAKE_SOURCE_DIR}/tests/bench/bench_wasm.cpp
                                           ${CMAKE_SOURCE_DIR}/tests/bench/bench_common.cpp)
target_link_libraries(bench_wasm PRIVATE cs_io)
target_compile_options(bench_wasm PRIVATE ${CS_OPT} -Wall -Wextra)
set_target_properties(bench_wasm PROPERTIES SUFFIX .js)
target_link_options(bench_wasm PRIVATE -fexceptions -sENVIRONMENT=node -sALLOW_MEMORY_GROWTH=1
  -sMAXIMUM_MEMORY=4GB -sEXIT_RUNTIME=1 -O3)
# The threaded variant (build-wasm-mt): main on a worker, so it may wait on the
# analyses' threads (a browser's or Node's main thread may not).
if(CIRCUITSCOPE_THREADS)
  target_link_options(bench_wasm PRIVATE -sPROXY_TO_PTHREAD)
endif()
