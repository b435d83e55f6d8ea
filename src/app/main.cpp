// The page's entry point: SDL2 window with a WebGL2 context, Dear ImGui with
// its SDL2 and OpenGL ES 3 backends, and one main loop (as Dear ImGui's
// examples), driven by the browser's requestAnimationFrame.
#include <SDL.h>
#include <emscripten.h>
#include <emscripten/html5.h>
#include <GLES3/gl3.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "app/app.h"
#include "app/clipboard.h"
#include "app/frame_stats.h"
#include "app/jobs.h"
#include "app/platform.h"
#include "app/redraw.h"
#include "app/train_view.h"
#include "app/ui.h"
#include "app/views.h"
#include "imgui.h"
#include "imgui_impl_opengl3.h"
#include "imgui_internal.h"  // ErrorCheckEndFrameRecover
#include "imgui_impl_sdl.h"

namespace {

SDL_Window* g_window = nullptr;
SDL_GLContext g_gl = nullptr;
float g_font_scale = 0.f;          // pixel ratio the font atlas was built for
std::vector<unsigned char> g_ttf;  // the embedded TTF (the atlas reads it while building)
uint64_t g_frames = 0;
bool g_gl_lost = false;            // the WebGL context is lost: no drawing until it is restored
int g_gl_restores = 0;
cs::app::Page g_page;              // the model panel and the views' tabs
cs::app::RedrawPacer g_pacer;      // which frames draw while jobs run, and their jobs' budget

constexpr float kBodyPx = 15.f;     // CSS pixels
constexpr float kHeadingPx = 19.f;

// Latin, Greek, Cyrillic, punctuation, arrows, maths, control pictures (␣), box and shapes.
const ImWchar kGlyphs[] = {0x0020, 0x024F, 0x0370, 0x03FF, 0x0400, 0x04FF, 0x2000, 0x206F, 0x20A0, 0x20CF,
                           0x2190, 0x21FF, 0x2200, 0x22FF, 0x2400, 0x243F, 0x2500, 0x25FF, 0xFFFD, 0xFFFD, 0};
const ImWchar kHeadingGlyphs[] = {0x0020, 0x00FF, 0x2190, 0x21FF, 0};

bool read_font() {
  std::FILE* f = std::fopen("/fonts/ui.ttf", "rb");
  if (!f) return false;
  std::fseek(f, 0, SEEK_END);
  long n = std::ftell(f);
  std::fseek(f, 0, SEEK_SET);
  g_ttf.resize(size_t(n > 0 ? n : 0));
  size_t got = std::fread(g_ttf.data(), 1, g_ttf.size(), f);
  std::fclose(f);
  return n > 0 && got == size_t(n);
}

// Rasterizes the fonts at `scale` device pixels per CSS pixel and draws them
// at 1/scale, so text is crisp on HiDPI screens.
void build_fonts(float scale) {
  ImGuiIO& io = ImGui::GetIO();
  io.Fonts->Clear();
  ImFont* body = nullptr;
  ImFont* heading = nullptr;
  if (!g_ttf.empty()) {
    ImFontConfig cfg;
    cfg.FontDataOwnedByAtlas = false;
    cfg.OversampleH = scale >= 2.f ? 1 : 2;
    cfg.OversampleV = 1;
    body = io.Fonts->AddFontFromMemoryTTF(g_ttf.data(), int(g_ttf.size()), kBodyPx * scale, &cfg, kGlyphs);
    heading = io.Fonts->AddFontFromMemoryTTF(g_ttf.data(), int(g_ttf.size()), kHeadingPx * scale, &cfg,
                                             kHeadingGlyphs);
  }
  if (!body) {  // the built-in font as a fallback
    ImFontConfig cfg;
    cfg.SizePixels = 13.f * scale;
    body = heading = io.Fonts->AddFontDefault(&cfg);
  }
  io.FontGlobalScale = 1.f / scale;
  cs::app::ui::set_fonts(body, heading);
  ImGui_ImplOpenGL3_DestroyFontsTexture();
  ImGui_ImplOpenGL3_CreateFontsTexture();
  g_font_scale = scale;
}

void style() {
  ImGui::StyleColorsDark();
  ImGuiStyle& st = ImGui::GetStyle();
  st.WindowPadding = ImVec2(10, 10);
  st.FramePadding = ImVec2(6, 4);
  st.ItemSpacing = ImVec2(8, 6);
  st.FrameRounding = 3.f;
  st.ChildRounding = 4.f;
  st.GrabRounding = 3.f;
  st.TabRounding = 3.f;
  st.ScrollbarSize = 14.f;
}

// The browser took the WebGL context away (a GPU reset, too many contexts, or
// WEBGL_lose_context): every texture, buffer and shader of it is gone. The
// event's default is prevented (returning true), which asks the browser to
// restore it; until then frames only step the jobs. The model, the views and
// their results live in wasm memory and stay.
EM_BOOL on_context_lost(int, const void*, void*) {
  if (!g_gl_lost) {
    g_gl_lost = true;
    ImGui_ImplOpenGL3_Shutdown();  // forgets the dead objects (the GL calls do nothing on a lost context)
  }
  return EM_TRUE;
}

// Restored: the same context, empty. ImGui's renderer starts over; its next
// frame makes its shaders, buffers and the font texture again (the page's
// only texture: the views draw with ImGui's shapes and text).
EM_BOOL on_context_restored(int, const void*, void*) {
  if (g_gl_lost) {
    ImGui_ImplOpenGL3_Init("#version 300 es");
    g_gl_lost = false;
    ++g_gl_restores;
  }
  return EM_TRUE;
}

// ImGui's allocations (its windows' state, the draw lists) come from here:
// when the browser's memory is exhausted this throws std::bad_alloc, which the
// frame catches (ImGui is built with exceptions), instead of handing ImGui a
// null pointer that it would write through (address 0 is ordinary memory in wasm).
void* imgui_alloc(size_t size, void*) {
  if (void* p = std::malloc(size)) return p;
  throw std::bad_alloc();
}
void imgui_free(void* p, void*) { std::free(p); }

// Says in the banner that a frame's drawing failed: "drawing the page: ran out
// of memory" or the exception's reason. With no memory even for that line,
// says nothing (a later frame fails again, or draws).
void report_drawing_failure(const std::exception& ex) noexcept {
  try {
    cs::app::app().session().set_error(cs::app::failure_reason("drawing the page", ex));
  } catch (const std::exception&) {
  }
}

// Ends a frame that threw outside the views' drawing (e.g. ImGui's own
// NewFrame or Render ran out of memory): closes what it left open, so the
// next NewFrame starts clean. The frame is not shown.
void end_failed_frame() noexcept {
  try {
    if (ImGui::GetCurrentContext()->WithinFrameScope) {
      ImGui::ErrorCheckEndFrameRecover(nullptr);
      ImGui::EndFrame();
    }
  } catch (const std::exception&) {
  }
}

void draw_frame() {
  const double t0 = emscripten_get_now();
  SDL_Event e;
  bool input = false;
  while (SDL_PollEvent(&e)) {
    ImGui_ImplSDL2_ProcessEvent(&e);
    input = true;
  }

  cs::app::Session& session = cs::app::app().session();
  const bool draw = !g_gl_lost && g_pacer.should_draw(t0, input, cs::app::ui::capture_pending(), session.jobs());
  const double jobs_t0 = emscripten_get_now();
  session.tick(cs::app::RedrawPacer::job_budget_ms(draw));
  const double jobs_ms = emscripten_get_now() - jobs_t0;
  if (!draw) {  // not drawn (the pacer), or nothing to draw on until the context is restored
    cs::app::frame_stats().record_undrawn(emscripten_get_now() - t0, jobs_ms);
    return;
  }

  ImGui_ImplOpenGL3_NewFrame();
  ImGui_ImplSDL2_NewFrame();
  ImGuiIO& io = ImGui::GetIO();
  float scale = io.DisplayFramebufferScale.x > 0.f ? io.DisplayFramebufferScale.x : 1.f;
  if (scale != g_font_scale) build_fonts(scale);
  // A plot's picture is wanted: no hover this frame (no tooltip over it).
  if (cs::app::ui::capture_pending()) io.MousePos = ImVec2(-FLT_MAX, -FLT_MAX);
  ImGui::NewFrame();
  try {
    g_page.draw(cs::app::app());
  } catch (const std::exception& ex) {
    // A view ran out of memory while drawing (or threw): close what the frame
    // left open, say so in the banner and show what was drawn.
    ImGui::ErrorCheckEndFrameRecover(nullptr);
    report_drawing_failure(ex);
  }
  ImGui::Render();

  const double gl_t0 = emscripten_get_now();
  int w = 0, h = 0;
  SDL_GL_GetDrawableSize(g_window, &w, &h);
  glViewport(0, 0, w, h);
  glClearColor(0.09f, 0.09f, 0.11f, 1.f);
  glClear(GL_COLOR_BUFFER_BIT);
  ImGui_ImplOpenGL3_RenderDrawData(ImGui::GetDrawData());
  if (auto c = cs::app::ui::take_capture())  // the frame's pixels are in the drawing buffer until it returns
    cs::app::platform::save_png(c->first.rect.x, c->first.rect.y, c->first.rect.z - c->first.rect.x,
                                c->first.rect.w - c->first.rect.y, c->second);
  SDL_GL_SwapWindow(g_window);
  const double t1 = emscripten_get_now();
  if (++g_frames == 2) cs::app::platform::page_started();
  cs::app::FrameStats& stats = cs::app::frame_stats();
  if (stats.first_frame_at == 0) stats.first_frame_at = t1;
  stats.record(t1 - t0, jobs_ms, t1 - gl_t0);
}

// One animation frame. Whatever runs out of memory outside a view's drawing
// (ImGui's own allocations in NewFrame or Render, the input events, the
// frame's statistics) ends the frame here instead of escaping the main loop,
// which would stop the page: the frame is closed, the banner says so if it
// can, and the next frame tries again.
void frame() {
  try {
    draw_frame();
  } catch (const std::exception& ex) {
    end_failed_frame();
    report_drawing_failure(ex);
  }
}

}  // namespace

namespace cs::app {
uint64_t frame_count() { return g_frames; }
bool gl_context_lost() { return g_gl_lost; }
int gl_context_restores() { return g_gl_restores; }
}  // namespace cs::app

int main() {
  if (SDL_Init(SDL_INIT_VIDEO | SDL_INIT_TIMER) != 0) {
    cs::app::platform::fatal(std::string("SDL could not start: ") + SDL_GetError());
    return 1;
  }
  // WebGL2 = OpenGL ES 3.0.
  SDL_GL_SetAttribute(SDL_GL_CONTEXT_FLAGS, 0);
  SDL_GL_SetAttribute(SDL_GL_CONTEXT_PROFILE_MASK, SDL_GL_CONTEXT_PROFILE_ES);
  SDL_GL_SetAttribute(SDL_GL_CONTEXT_MAJOR_VERSION, 3);
  SDL_GL_SetAttribute(SDL_GL_CONTEXT_MINOR_VERSION, 0);
  SDL_GL_SetAttribute(SDL_GL_DOUBLEBUFFER, 1);
  SDL_GL_SetAttribute(SDL_GL_DEPTH_SIZE, 0);
  SDL_GL_SetAttribute(SDL_GL_STENCIL_SIZE, 0);
  // The canvas is sized by CSS (the whole window); SDL sizes its backing store
  // at devicePixelRatio and follows window resizes.
  g_window = SDL_CreateWindow("circuitscope", SDL_WINDOWPOS_CENTERED, SDL_WINDOWPOS_CENTERED, 1280, 800,
                              SDL_WINDOW_OPENGL | SDL_WINDOW_RESIZABLE | SDL_WINDOW_ALLOW_HIGHDPI);
  if (g_window) g_gl = SDL_GL_CreateContext(g_window);
  if (!g_gl) {
    cs::app::platform::fatal("This page needs WebGL2, and the browser could not create a WebGL2 context (" +
                             std::string(SDL_GetError()) + "). Try another browser or enable hardware acceleration.");
    return 1;
  }
  SDL_GL_MakeCurrent(g_window, g_gl);

  IMGUI_CHECKVERSION();
  ImGui::SetAllocatorFunctions(imgui_alloc, imgui_free);
  ImGui::CreateContext();
  ImGuiIO& io = ImGui::GetIO();
  io.IniFilename = nullptr;
  style();
  ImGui_ImplSDL2_InitForOpenGL(g_window, g_gl);
  ImGui_ImplOpenGL3_Init("#version 300 es");
  cs::app::install_clipboard();
  read_font();
  emscripten_set_webglcontextlost_callback("#canvas", nullptr, false, on_context_lost);
  emscripten_set_webglcontextrestored_callback("#canvas", nullptr, false, on_context_restored);

  // A run on the text sample asks the shell to download it, whichever tab is shown.
  if (auto* train = cs::app::app().view<cs::app::TrainView>()) train->set_sample_source(cs::app::platform::fetch_train_sample);
#if defined(__EMSCRIPTEN_PTHREADS__)
  // The threaded build (circuitscope-mt.js), which the shell loads only when
  // the page is cross-origin isolated: analyses run on worker threads, never
  // on this one (docs/speed.md, "Threads in the page").
  cs::app::app().session().jobs().set_threads(std::max(2, int(std::thread::hardware_concurrency())));
#endif
  emscripten_set_main_loop(frame, 0, true);
  return 0;
}
