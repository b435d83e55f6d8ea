# The page: Dear ImGui + SDL2 + WebGL2, compiled to wasm (included only under emcmake).
# Produces ${CMAKE_BINARY_DIR}/dist/, a self-contained static site:
#   index.html, shell/*, circuitscope.js, circuitscope.wasm, assets/models/**,
#   and circuitscope-offline.html (all of it in one file; target circuitscope_offline)
# Dependencies come from scripts/setup (source ~/.cache/circuitscope/env.sh), or
# from the -D cache variables below.

set(CIRCUITSCOPE_SDL_SRC "$ENV{CIRCUITSCOPE_SDL_SRC}" CACHE PATH "SDL2 2.26.5 source tree")
set(CIRCUITSCOPE_SDL_WASM "$ENV{CIRCUITSCOPE_SDL_WASM}" CACHE PATH "SDL2 built for wasm (CMake build dir with libSDL2.a)")
set(CIRCUITSCOPE_SDL_WASM_MT "$ENV{CIRCUITSCOPE_SDL_WASM_MT}" CACHE PATH "SDL2 built for wasm with -pthread")
set(CIRCUITSCOPE_PAGE_MT_DIR "" CACHE PATH
    "A threaded build folder (CIRCUITSCOPE_THREADS=ON) whose dist/circuitscope-mt.* this dist/ takes")
if(CIRCUITSCOPE_THREADS)
  set(CIRCUITSCOPE_SDL_WASM ${CIRCUITSCOPE_SDL_WASM_MT})
endif()
set(CIRCUITSCOPE_IMGUI_SRC "$ENV{CIRCUITSCOPE_IMGUI_SRC}" CACHE PATH "Dear ImGui 1.86 source tree")
set(CIRCUITSCOPE_FONT /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf CACHE FILEPATH
    "TTF embedded into the page (fonts-dejavu-core: has the glyphs ␣ ↵ ⇥ used for tokens)")

set(_cs_page_missing "")
foreach(_f ${CIRCUITSCOPE_SDL_WASM}/libSDL2.a ${CIRCUITSCOPE_SDL_SRC}/include/SDL.h
        ${CIRCUITSCOPE_IMGUI_SRC}/imgui.cpp ${CIRCUITSCOPE_IMGUI_SRC}/backends/imgui_impl_sdl.cpp
        ${CIRCUITSCOPE_FONT})
  if(NOT EXISTS "${_f}")
    list(APPEND _cs_page_missing "${_f}")
  endif()
endforeach()
if(_cs_page_missing)
  message(WARNING "circuitscope_page is not built: missing ${_cs_page_missing}. "
                  "Run scripts/setup, then `source ~/.cache/circuitscope/env.sh` before emcmake.")
  return()
endif()

# ---- Dear ImGui with the SDL2 and OpenGL ES 3 (WebGL2) backends --------------
# $WASM/include first: SDL.h includes "SDL_config.h", which must be the configured one.
set(_sdl_includes ${CIRCUITSCOPE_SDL_WASM}/include ${CIRCUITSCOPE_SDL_SRC}/include)
foreach(_d ${CIRCUITSCOPE_SDL_WASM}/include-config-release/SDL2 ${CIRCUITSCOPE_SDL_WASM}/include-config-release)
  if(EXISTS ${_d}/SDL_config.h)
    list(PREPEND _sdl_includes ${_d})
    break()
  endif()
endforeach()
add_library(cs_sdl2 STATIC IMPORTED)
set_target_properties(cs_sdl2 PROPERTIES IMPORTED_LOCATION ${CIRCUITSCOPE_SDL_WASM}/libSDL2.a)
target_include_directories(cs_sdl2 SYSTEM INTERFACE ${_sdl_includes})

add_library(cs_imgui STATIC
  ${CIRCUITSCOPE_IMGUI_SRC}/imgui.cpp ${CIRCUITSCOPE_IMGUI_SRC}/imgui_draw.cpp
  ${CIRCUITSCOPE_IMGUI_SRC}/imgui_tables.cpp ${CIRCUITSCOPE_IMGUI_SRC}/imgui_widgets.cpp
  ${CIRCUITSCOPE_IMGUI_SRC}/backends/imgui_impl_sdl.cpp
  ${CIRCUITSCOPE_IMGUI_SRC}/backends/imgui_impl_opengl3.cpp)
target_include_directories(cs_imgui SYSTEM PUBLIC ${CIRCUITSCOPE_IMGUI_SRC} ${CIRCUITSCOPE_IMGUI_SRC}/backends)
# WebGL2 is OpenGL ES 3.0; no file functions (nothing is read from or written to disk).
target_compile_definitions(cs_imgui PUBLIC IMGUI_IMPL_OPENGL_ES3 IMGUI_DISABLE_FILE_FUNCTIONS
                                           IMGUI_DISABLE_OBSOLETE_FUNCTIONS)
target_compile_options(cs_imgui PRIVATE -O2 -fexceptions)
target_link_libraries(cs_imgui PUBLIC cs_sdl2)

# ---- the page ---------------------------------------------------------------
# Every src/app file, compiled here with CS_APP_DRAW (views' draw(), view.h);
# the same logic without drawing is the cs_app library of the unit tests.
file(GLOB CS_APP_SRC CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/app/*.cpp)
set(CS_DIST ${CMAKE_BINARY_DIR}/dist)
add_executable(circuitscope_page ${CS_APP_SRC})
target_link_libraries(circuitscope_page PRIVATE cs_io cs_train cs_imgui)
target_compile_definitions(circuitscope_page PRIVATE CS_APP_DRAW)
target_compile_options(circuitscope_page PRIVATE ${CS_OPT} -Wall -Wextra)
set(CS_PAGE_EXPORTS _main _malloc _free)
string(JOIN "," _cs_exports ${CS_PAGE_EXPORTS})
target_link_options(circuitscope_page PRIVATE
  -fexceptions ${CS_OPT}
  -sENVIRONMENT=web
  -sALLOW_MEMORY_GROWTH=1 -sMAXIMUM_MEMORY=4GB -sINITIAL_MEMORY=64MB
  # A file too large for memory: malloc returns 0 (and new throws std::bad_alloc)
  # instead of aborting, so the page can say so and keep going.
  -sABORTING_MALLOC=0
  -sMIN_WEBGL_VERSION=2 -sMAX_WEBGL_VERSION=2
  -sEXPORTED_FUNCTIONS=${_cs_exports}
  -sEXPORTED_RUNTIME_METHODS=ccall,cwrap,UTF8ToString,stringToUTF8,lengthBytesUTF8,HEAPU8
  "SHELL:--embed-file ${CIRCUITSCOPE_FONT}@/fonts/ui.ttf")
set_target_properties(circuitscope_page PROPERTIES
  OUTPUT_NAME circuitscope SUFFIX .js
  RUNTIME_OUTPUT_DIRECTORY ${CS_DIST}
  LINK_DEPENDS ${CIRCUITSCOPE_FONT})
if(CIRCUITSCOPE_THREADS)
  # circuitscope-mt.js, .wasm and .worker.js. Workers for every core and the
  # job's own thread are started with the page, so creating a thread never
  # waits for a worker to load.
  set_target_properties(circuitscope_page PROPERTIES OUTPUT_NAME circuitscope-mt)
  target_link_options(circuitscope_page PRIVATE -sENVIRONMENT=web,worker
    "SHELL:-sPTHREAD_POOL_SIZE='Math.min(navigator.hardwareConcurrency||2,16)+1'")
  return()  # the static files and the one-file page come with the single-threaded build
endif()
if(CIRCUITSCOPE_PAGE_MT_DIR)
  set(_cs_mt_out "")
  foreach(_f circuitscope-mt.js circuitscope-mt.wasm circuitscope-mt.worker.js)
    add_custom_command(OUTPUT ${CS_DIST}/${_f}
      COMMAND ${CMAKE_COMMAND} -E copy_if_different ${CIRCUITSCOPE_PAGE_MT_DIR}/dist/${_f} ${CS_DIST}/${_f}
      DEPENDS ${CIRCUITSCOPE_PAGE_MT_DIR}/dist/${_f}
      COMMENT "dist/${_f} (the threaded build)" VERBATIM)
    list(APPEND _cs_mt_out ${CS_DIST}/${_f})
  endforeach()
  add_custom_target(circuitscope_page_mt_files ALL DEPENDS ${_cs_mt_out})
endif()

# Static files of the site, copied when they change.
file(GLOB_RECURSE _cs_static RELATIVE ${CMAKE_SOURCE_DIR} CONFIGURE_DEPENDS
  ${CMAKE_SOURCE_DIR}/shell/* ${CMAKE_SOURCE_DIR}/assets/models/* ${CMAKE_SOURCE_DIR}/assets/text/*)
list(APPEND _cs_static index.html)
set(_cs_static_out "")
foreach(_rel ${_cs_static})
  add_custom_command(OUTPUT ${CS_DIST}/${_rel}
    COMMAND ${CMAKE_COMMAND} -E copy_if_different ${CMAKE_SOURCE_DIR}/${_rel} ${CS_DIST}/${_rel}
    DEPENDS ${CMAKE_SOURCE_DIR}/${_rel}
    COMMENT "dist/${_rel}" VERBATIM)
  list(APPEND _cs_static_out ${CS_DIST}/${_rel})
endforeach()
add_custom_target(circuitscope_page_files DEPENDS ${_cs_static_out})
add_dependencies(circuitscope_page circuitscope_page_files)

# ---- the page as one file: dist/circuitscope-offline.html --------------------
# The wasm, the shell and the bundled models inlined (scripts/make-offline.mjs),
# for file:// with no server and no network. Re-made when the page relinks.
find_program(CS_NODE_FOR_OFFLINE node)
if(CS_NODE_FOR_OFFLINE)
  add_custom_command(OUTPUT ${CS_DIST}/circuitscope-offline.html
    COMMAND ${CS_NODE_FOR_OFFLINE} ${CMAKE_SOURCE_DIR}/scripts/make-offline.mjs ${CS_DIST}
    DEPENDS circuitscope_page ${_cs_static_out} ${CMAKE_SOURCE_DIR}/scripts/make-offline.mjs
    COMMENT "dist/circuitscope-offline.html" VERBATIM)
  add_custom_target(circuitscope_offline ALL DEPENDS ${CS_DIST}/circuitscope-offline.html)
else()
  message(WARNING "node not found: dist/circuitscope-offline.html is not made")
endif()
