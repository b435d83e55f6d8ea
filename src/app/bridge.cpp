// The page's C functions for the shell (shell/circuitscope-shell.js) and for
// tests/automation. Strings returned stay valid until the next call of the
// same function.
#include <emscripten.h>
#include <emscripten/heap.h>

#include <malloc.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <functional>
#include <new>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "app/app.h"
#include "app/bigram_view.h"
#include "app/clipboard.h"
#include "app/frame_stats.h"
#include "app/jobs.h"
#include "app/json.h"
#include "app/link.h"
#include "app/train_view.h"
#include "app/ui.h"
#include "core/direct_path.h"
#include "core/error.h"
#include "io/json_out.h"

namespace {

// As the CLI's JSON (app/json.h).
using cs::app::Json;
using cs::app::dump;

cs::app::Session& session() { return cs::app::app().session(); }

// The bigram view, for its bridge entry points (cs_select_token & co.).
cs::app::BigramView* bigram() { return cs::app::app().view<cs::app::BigramView>(); }

std::string str(const char* s) { return s ? std::string(s) : std::string(); }

// [{"id","token","logit","prob"}], as the CLI's `bigrams --json`.
Json ranked_json(const cs::app::Session& s, const std::vector<cs::Ranked>& list) {
  Json a = Json::array();
  for (const auto& r : list) {
    Json e;
    e["id"] = r.id;
    e["token"] = s.token_display(r.id);
    e["logit"] = r.logit;
    e["prob"] = r.prob;
    a.push_back(e);
  }
  return a;
}

// The shown model for a bridge query about token `id` (which must be below
// `limit(config)`); throws cs::Error with the reason otherwise.
template <class Limit>
const cs::LoadedModel& shown_for_query(const cs::app::Session& s, int id, Limit limit) {
  const cs::LoadedModel* lm = s.shown();
  if (!lm) throw cs::Error("no model loaded");
  if (s.raw_pending()) throw cs::Error("raw weights still loading");
  const int n = limit(lm->model.config());
  if (id < 0 || id >= n)
    throw cs::Error("token id " + std::to_string(id) + " out of range [0, " + std::to_string(n) + ")");
  return *lm;
}

// Runs f, which builds the answer in `out`. An exception out of it (memory
// ran out building a large answer) becomes `failed(reason)` in `out` instead
// of unwinding into the shell's JavaScript; `last_resort` when not even that
// fits in memory.
template <class F, class Failed>
const char* answer(std::string& out, const char* function, F&& f, Failed&& failed, const char* last_resort) {
  try {
    try {
      f();
    } catch (const std::exception& e) {
      out = failed(cs::app::failure_reason(function, e));
    }
  } catch (const std::bad_alloc&) {
    return last_resort;
  }
  return out.c_str();
}

// The failure of a JSON answer: {"call_error": reason}.
std::string call_error_json(const std::string& reason) { return dump(Json{{"call_error", reason}}); }

// cs_state_json's answer.
std::string state_json() {
  const cs::app::Session& s = session();
  Json j;
  j["frames"] = cs::app::frame_count();
  // wasm memory: its size and the bytes malloc has handed out (the leak test's measure).
  const struct mallinfo mi = mallinfo();
  j["memory"] = Json{{"heap_bytes", double(emscripten_get_heap_size())}, {"in_use", double(unsigned(mi.uordblks))}};
  j["gl"] = Json{{"lost", cs::app::gl_context_lost()}, {"restores", cs::app::gl_context_restores()}};
  j["error"] = s.error();
  // The banner as drawn (app_frame.cpp): heading, the error, the line under it.
  j["banner"] = s.error().empty() ? Json(nullptr)
                                  : Json{{"heading", s.error_heading()}, {"message", s.error()}, {"note", s.error_note()}};
  Json loading;
  loading["active"] = s.loading();
  loading["label"] = s.load_label();
  loading["stage"] = s.load_stage();
  loading["progress"] = s.load_progress();
  j["loading"] = loading;
  Json jobs = Json::array();  // every job running (loads and the views' queries)
  for (const auto& info : s.jobs().list())
    jobs.push_back(Json{{"slot", info.slot}, {"label", info.label}, {"stage", info.stage},
                        {"progress", info.progress}, {"frames", info.frames}, {"ms", info.ms}});
  j["jobs"] = jobs;
  j["threads"] = s.jobs().threads();  // 1: stepped in frame slices; >= 2: worker threads
  j["report"] = cs::app::app().analysis_report().state_json(s);
  const auto& d = s.download();
  j["download"] = Json{{"active", d.active}, {"label", d.label}, {"loaded", d.loaded}, {"total", d.total}};
  Json bundled = Json::array();
  for (const auto& b : s.bundled()) bundled.push_back(Json{{"id", b.id}, {"title", b.title}});
  j["bundled"] = bundled;
  j["bundled_pick"] = s.bundled().empty() ? Json(nullptr) : Json(s.bundled()[size_t(s.bundled_pick())].id);
  j["show_raw"] = s.show_raw();
  j["raw_pending"] = s.raw_pending();
  const cs::app::ActiveModel* a = s.active();
  const cs::LoadedModel* lm = s.shown();
  if (a && lm) {
    Json m;
    m["id"] = a->id;
    m["title"] = a->title;
    m["description"] = a->description;
    m["origin"] = a->origin;
    m["weights_file"] = lm->weights_file;
    m["config"] = cs::config_json(lm->model);  // the shared schema (io/json_out.h)
    m["weights"] = cs::weights_kind(lm->model);
    m["processing"] = lm->model.processing.describe();
    if (lm->tokenizer)
      m["tokenizer"] = Json{{"kind", lm->tokenizer->kind()}, {"size", lm->tokenizer->vocab_size()}};
    else
      m["tokenizer"] = nullptr;
    m["warnings"] = lm->warnings;
    j["model"] = m;
    j["warnings"] = lm->warnings;
  } else {
    j["model"] = nullptr;
    j["warnings"] = Json::array();
  }
  // Head badges (core/head_badges.h): the scores, the thresholds and the heads labelled.
  {
    Json b;
    b["pending"] = s.jobs().running(cs::app::Session::kBadgesSlot);
    if (const cs::HeadBadges* hb = s.badges()) {
      Json v;
      v["experiment"] = Json{{"tokens", hb->experiment.tokens}, {"repeats", hb->experiment.repeats},
                             {"examples", hb->experiment.examples}, {"seed", hb->experiment.seed}};
      v["thresholds"] = Json{{"previous_token", cs::HeadBadges::kPrevious},
                             {"induction", cs::HeadBadges::kInduction},
                             {"copying", cs::HeadBadges::kCopying}};
      v["previous_token"] = cs::matrix_json(hb->previous_token());
      v["prefix_matching"] = cs::matrix_json(hb->prefix_matching());
      v["ov_copying"] = cs::matrix_json(hb->ov_copying);
      Json heads = Json{{"previous_token", Json::array()}, {"induction", Json::array()}, {"copying", Json::array()}};
      for (int l = 0; l < int(hb->prefix_matching().rows()); ++l)
        for (int h = 0; h < int(hb->prefix_matching().cols()); ++h) {
          const std::string name = cs::app::head_text(l, h);
          if (hb->previous(l, h)) heads["previous_token"].push_back(name);
          if (hb->induction(l, h)) heads["induction"].push_back(name);
          if (hb->copying(l, h)) heads["copying"].push_back(name);
        }
      v["heads"] = heads;
      b["value"] = v;
    } else {
      b["value"] = nullptr;
    }
    j["badges"] = b;
  }
  // Each view's selection and the results it holds ({id: {"title","selection","results"}}),
  // and the keys views kept from before the registry ("bigram").
  cs::app::app().legacy_state_json(j);
  j["views"] = cs::app::app().views_json();
  j["open_view"] = cs::app::app().open_view();  // the tab shown
  Json rects = Json::object();
  for (const auto& [name, r] : cs::app::ui::marked_items()) rects[name] = {r.x, r.y, r.z, r.w};
  j["rects"] = rects;  // widgets' screen rectangles in CSS pixels (x0, y0, x1, y1), for tests
  j["text_input"] = ImGui::GetCurrentContext() && ImGui::GetIO().WantTextInput;  // a text field has focus
  return dump(j);
}

// Whether a length the shell passes for file `name` can be a wasm32 size; if
// not (4 GB or more, or not a number) the banner says the file is too large.
bool stageable(const char* name, double len) {
  if (len >= 0 && len < 4294967296.0) return true;
  session().set_error("file " + str(name) + " is too large for the browser's memory",
                      cs::app::Session::ErrorKind::load);
  return false;
}

// Memory taken by cs_test_fill_memory, by address.
std::vector<void*> g_ballast;

}  // namespace

extern "C" {

// Whether a file of `bytes` fits the page (Session::kMaxFileBytes): 1, or 0
// with the banner saying its size and the limit. The shell asks about every
// file before it reads any.
EMSCRIPTEN_KEEPALIVE int cs_check_file_size(const char* name, double bytes) {
  return session().check_file_size(str(name), bytes) ? 1 : 0;
}

// For the tests of running out of memory: takes all the memory the page can
// still get (in blocks down to 16 kB) except about `leave` bytes at the top of
// the heap (so the next allocation larger than that fails, as in a browser
// with less memory); leave = 0 also takes the small pieces left between
// blocks (down to 64 bytes: nothing larger can be allocated until it is
// given back); leave < 0 gives it all back. Returns the bytes taken.
EMSCRIPTEN_KEEPALIVE double cs_test_fill_memory(double leave) {
  for (void* p : g_ballast) std::free(p);
  g_ballast.clear();
  g_ballast.shrink_to_fit();
  if (leave < 0) return 0;
  // No growth once memory is short (64 blocks of 64 MB fill 4 GB; room for the small pieces).
  g_ballast.reserve(leave == 0 ? size_t(1) << 16 : 1024);
  auto take = [](size_t size) {
    while (g_ballast.size() < g_ballast.capacity())
      if (void* p = std::malloc(size)) g_ballast.push_back(p);
      else break;
  };
  for (size_t size : {size_t(64) << 20, size_t(4) << 20, size_t(256) << 10, size_t(16) << 10}) take(size);
  if (leave == 0)
    for (size_t size : {size_t(1) << 10, size_t(64)}) take(size);
  // Gives back the highest blocks, which join into one free stretch.
  std::sort(g_ballast.begin(), g_ballast.end(), std::greater<>());
  double freed = 0;
  size_t i = 0;
  for (; i < g_ballast.size() && freed < leave; ++i) {
    freed += double(malloc_usable_size(g_ballast[i]));
    std::free(g_ballast[i]);
  }
  g_ballast.erase(g_ballast.begin(), g_ballast.begin() + std::ptrdiff_t(i));
  // The last block freed may have been a large one: takes back what is over `leave`.
  for (size_t size : {size_t(4) << 20, size_t(256) << 10, size_t(16) << 10})
    while (freed - double(size) >= leave)
      if (void* p = std::malloc(size)) {
        g_ballast.push_back(p);
        freed -= double(malloc_usable_size(p));
      } else {
        break;
      }
  double taken = 0;
  for (void* p : g_ballast) taken += double(malloc_usable_size(p));
  return taken;
}

// For the test of a frame that runs out of memory part-way: the next frame's
// view throws std::bad_alloc from inside its windows (ui::fail_next_view_draw).
EMSCRIPTEN_KEEPALIVE void cs_test_fail_drawing() { cs::app::ui::fail_next_view_draw(); }

// Reserves len bytes for file `name` in the staging set; returns where to write
// them, or 0 when the browser's memory cannot hold it (the banner says so).
EMSCRIPTEN_KEEPALIVE uint8_t* cs_stage_file(const char* name, double len) {
  if (!stageable(name, len)) return nullptr;
  return session().stage_file(str(name), size_t(len));
}

// The same in pieces (the shell's streaming path): reserve once, then one
// append per chunk, each returning where that chunk's n bytes go (0 on failure).
EMSCRIPTEN_KEEPALIVE int cs_stage_reserve(const char* name, double len) {
  if (!stageable(name, len)) return 0;
  return session().stage_reserve(str(name), size_t(len)) ? 1 : 0;
}

EMSCRIPTEN_KEEPALIVE uint8_t* cs_stage_append(const char* name, double n) {
  if (!(n >= 0) || n >= 4294967296.0) return nullptr;
  return session().stage_append(str(name), size_t(n));
}

EMSCRIPTEN_KEEPALIVE void cs_stage_skipped(const char* name) { session().stage_skipped(str(name)); }

EMSCRIPTEN_KEEPALIVE void cs_discard_staged() { session().discard_staged(); }

// Loads the staged files as a new model (the current one stays until this succeeds).
// origin: "bundled" or "files".
EMSCRIPTEN_KEEPALIVE void cs_load_staged(const char* id, const char* title, const char* description,
                                         const char* origin) {
  session().load_staged(str(id), str(title), str(description), str(origin));
}

EMSCRIPTEN_KEEPALIVE void cs_set_bundled_index(const char* json) { session().set_bundled_index(str(json)); }

// Progress of files coming into the staging set (bytes; total 0 when
// unknown), under the line the model panel shows ("Downloading <model>",
// "Reading <file>", "Downloading the text sample").
EMSCRIPTEN_KEEPALIVE void cs_download_progress(const char* label, double loaded, double total, int active) {
  auto& d = session().download();
  d.label = str(label);
  d.loaded = loaded;
  d.total = total;
  d.active = active != 0;
}

// An error found by the shell (a failed download, an unreadable file): shown in the banner.
EMSCRIPTEN_KEEPALIVE void cs_report_error(const char* message) {
  session().set_error(str(message), cs::app::Session::ErrorKind::load);
}

EMSCRIPTEN_KEEPALIVE void cs_paste_text(const char* text) { cs::app::paste_text(text); }

// Selections, as the bigram view's widgets make them (the results follow in jobs).
EMSCRIPTEN_KEEPALIVE void cs_select_token(int id) {
  if (auto* v = bigram()) v->select_source(session(), id);
}
EMSCRIPTEN_KEEPALIVE void cs_select_next(int id) {
  if (auto* v = bigram()) v->select_next(session(), id);
}
EMSCRIPTEN_KEEPALIVE void cs_set_top_k(int k) {
  if (auto* v = bigram()) v->set_top_k(session(), k);
}
EMSCRIPTEN_KEEPALIVE void cs_set_top_k_sources(int k) {
  if (auto* v = bigram()) v->set_top_k_sources(session(), k);
}

// Sets views' selections from {"<view id>": selection, ...} (view.h; the
// shape of each is its "selection" in cs_state_json's "views"). Returns "" or
// the reason it was refused (an unknown view, a bad field).
// Shows the tab of view `id` from the next frame (as a click on the tab would).
EMSCRIPTEN_KEEPALIVE void cs_open_view(const char* id) { cs::app::app().request_tab(str(id)); }

EMSCRIPTEN_KEEPALIVE const char* cs_set_selections(const char* json) {
  static std::string out;
  try {
    cs::app::app().set_selections(Json::parse(str(json)));
    out.clear();
  } catch (const std::exception& e) {
    out = e.what();
  }
  return out.c_str();
}

// The page's state as a link's query (app/link.h), "" with no model; the
// shell writes it into the address bar and the history.
EMSCRIPTEN_KEEPALIVE const char* cs_link_query() {
  static std::string out;
  return answer(out, "cs_link_query", [] { out = cs::app::link_query(cs::app::app()); },
                [](const std::string&) { return std::string(); }, "");  // the address bar stays as it was
}

// Opens a link's query (location.search): its tab and selections are applied
// once the model it names is shown (at once when it is); reasons for what it
// drops go to the banner then, after `notice` (the shell's, e.g. why the
// link's own model was replaced; "" for none). Returns the model it names.
EMSCRIPTEN_KEEPALIVE const char* cs_open_link(const char* query, const char* notice) {
  static std::string out;
  cs::app::Link link = cs::app::parse_link(str(query), cs::app::app());
  if (notice && *notice) link.problems.insert(link.problems.begin(), str(notice));
  out = link.model;
  cs::app::app().open_link(std::move(link));
  return out.c_str();
}

// Stops a model load in progress (the Cancel button).
EMSCRIPTEN_KEEPALIVE void cs_cancel_load() { session().cancel_load(); }

// C++ time per animation frame (drawn or not) since the last cs_frame_stats_reset():
// {"frames","drawn","skipped","max_ms","p50_ms","p95_ms","p99_ms","mean_ms","over_50ms","max_work_ms","work_p50_ms",
//  "work_p95_ms","max_jobs_ms","max_gl_ms","first_frame_at_ms","longest_job_step":{"ms","label","stage"},
//  "longest_job" and "slowest_done": {"ms","done_ms","frames","label"} (JobRunner::JobRecord)}
// (work: the frame without its WebGL calls, which wait on the browser's GPU process)
// (first_frame_at_ms: performance.now() when the first frame was drawn).
EMSCRIPTEN_KEEPALIVE const char* cs_frame_stats_json() {
  static std::string out;
  const cs::app::FrameStats& f = cs::app::frame_stats();
  Json j;
  j["frames"] = f.frames();
  j["drawn"] = f.drawn();
  j["skipped"] = f.skipped();  // animation frames not drawn (redraw.h)
  j["max_ms"] = f.max_frame_ms();
  j["p50_ms"] = f.percentile(50);
  j["p95_ms"] = f.percentile(95);
  j["p99_ms"] = f.percentile(99);
  j["mean_ms"] = f.frames() ? f.total_frame_ms() / double(f.frames()) : 0.0;
  j["over_50ms"] = f.over_50ms();
  j["max_work_ms"] = f.max_work_ms();  // frame minus its WebGL calls
  j["work_p50_ms"] = f.work_percentile(50);
  j["work_p95_ms"] = f.work_percentile(95);
  j["work_p99_ms"] = f.work_percentile(99);
  j["max_jobs_ms"] = f.max_jobs_ms();
  j["max_gl_ms"] = f.max_gl_ms();
  j["first_frame_at_ms"] = f.first_frame_at;
  const auto& step = session().jobs().longest_step();  // the longest single job step in the window
  j["longest_job_step"] = Json{{"ms", step.ms}, {"label", step.label}, {"stage", step.stage}};
  auto job_json = [](const cs::app::JobRunner::JobRecord& r) {
    return Json{{"ms", r.ms}, {"done_ms", r.done_ms}, {"frames", r.frames}, {"label", r.label}};
  };
  j["longest_job"] = job_json(session().jobs().longest_job());
  j["slowest_done"] = job_json(session().jobs().slowest_done());
  out = dump(j);
  return out.c_str();
}

EMSCRIPTEN_KEEPALIVE void cs_frame_stats_reset() {
  cs::app::frame_stats().reset();
  session().jobs().reset_longest_step();
}

EMSCRIPTEN_KEEPALIVE void cs_set_raw(int raw) { session().set_raw(raw != 0); }

// The Train view's buttons (train_view.h): "start" (Train / Restart),
// "pause", "resume", "stop", "open" (step < 0: the weights of now, else the
// snapshot at that update), "snapshot" (keep the weights of now), "save". Returns "" or the reason.
EMSCRIPTEN_KEEPALIVE const char* cs_train(const char* action, double step) {
  static std::string out;
  out.clear();
  auto* v = cs::app::app().view<cs::app::TrainView>();
  const std::string a = str(action);
  try {
    if (!v) throw cs::Error("no Train view");
    if (a == "start") v->start(session());
    else if (a == "pause") v->pause(session());
    else if (a == "resume") v->resume(session());
    else if (a == "stop") v->stop(session());
    else if (a == "open") v->open_model(session(), int64_t(step));
    else if (a == "snapshot") v->keep_snapshot();
    else if (a == "save") v->save_download();
    else throw cs::Error("cs_train: unknown action '" + a + "'");
  } catch (const std::exception& e) {
    out = e.what();
  }
  return out.c_str();
}

// Files for the Train view come in through the staging set, as a model's do
// (cs_stage_*, the shell's streamIntoWasm), then cs_train_received hands them
// over: kind "sample" (assets/text/: index.json and the files it names) or
// "file" (one text file of the user's). cs_train_check_file refuses a text
// file too large for a run (1, or 0 with the banner saying why) before the
// shell reads it; cs_train_fetch_failed ends a sample download that failed.
EMSCRIPTEN_KEEPALIVE int cs_train_check_file(const char* name, double bytes) {
  try {
    cs::app::check_text_file_size(str(name), bytes);
    return session().check_file_size(str(name), bytes) ? 1 : 0;
  } catch (const std::exception& e) {
    session().set_error(e.what());
    return 0;
  }
}

EMSCRIPTEN_KEEPALIVE void cs_train_received(const char* kind) {
  cs::FileSet files = session().take_staged();
  auto* v = cs::app::app().view<cs::app::TrainView>();
  if (!v) return;
  try {
    if (str(kind) == "sample") {
      v->receive_sample(session(), files);
    } else if (files.size() == 1) {
      auto& [name, bytes] = *files.begin();
      v->receive_file(session(), name, std::move(bytes));
    } else {
      throw cs::Error("train: expected one text file, got " + std::to_string(files.size()));
    }
  } catch (const std::exception& e) {
    session().set_error(e.what());
  }
}

EMSCRIPTEN_KEEPALIVE void cs_train_fetch_failed(const char* reason) {
  session().discard_staged();
  if (auto* v = cs::app::app().view<cs::app::TrainView>()) v->sample_failed(session(), str(reason));
}

// The page's state for tests and automation ({"call_error": reason} when it
// cannot be built).
EMSCRIPTEN_KEEPALIVE const char* cs_state_json() {
  static std::string out;
  return answer(out, "cs_state_json", [] { out = state_json(); }, call_error_json,
                R"({"call_error": "cs_state_json: ran out of memory"})");
}

// Top-k next tokens after source_id from the shown weights, in the CLI's
// `bigrams --json` shape: {"source":{"id","token"},"weights","next":[{"id","token","logit","prob"}]}.
// {"error": "..."} when there is no model or the id is out of range.
EMSCRIPTEN_KEEPALIVE const char* cs_bigram_top_json(int source_id, int k) {
  static std::string out;
  const cs::app::Session& s = session();
  Json j;
  try {
    const cs::LoadedModel& lm = shown_for_query(s, source_id, [](const cs::ModelConfig& c) { return c.d_vocab; });
    j["source"] = Json{{"id", source_id}, {"token", s.token_display(source_id)}};
    j["weights"] = cs::weights_kind(lm.model);
    j["next"] = ranked_json(s, cs::bigram_top_next(lm.model, source_id, k));
  } catch (const std::exception& e) {
    j = Json{{"error", e.what()}};
  }
  out = dump(j);
  return out.c_str();
}

// Reverse lookup computed at once (not sliced: for automation and benchmarks;
// the view runs the same computation as a job), in the CLI's
// `bigrams --reverse --json` shape: {"next_token":{"id","token"},"weights","sources":[...]}.
EMSCRIPTEN_KEEPALIVE const char* cs_bigram_sources_json(int next_id, int k) {
  static std::string out;
  const cs::app::Session& s = session();
  Json j;
  try {
    const cs::LoadedModel& lm = shown_for_query(s, next_id, [](const cs::ModelConfig& c) { return c.vocab_out(); });
    j["next_token"] = Json{{"id", next_id}, {"token", s.token_display(next_id)}};
    j["weights"] = cs::weights_kind(lm.model);
    j["sources"] = ranked_json(s, cs::bigram_top_sources(lm.model, next_id, k));
  } catch (const std::exception& e) {
    j = Json{{"error", e.what()}};
  }
  out = dump(j);
  return out.c_str();
}

}  // extern "C"
