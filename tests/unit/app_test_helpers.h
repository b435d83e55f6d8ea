// Helpers the app tests share: staging a model's files in a Session, running
// its jobs to the end, and loading a model into an App.
#pragma once
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "app/app.h"
#include "io/model_io.h"

namespace cs::app::apptest {

inline void stage(Session& s, const FileSet& files) {
  for (const auto& [name, bytes] : files) {
    uint8_t* p = s.stage_file(name, bytes.size());
    ASSERT_NE(p, nullptr);
    if (!bytes.empty()) std::memcpy(p, bytes.data(), bytes.size());
  }
}

// Ticks with `budget_ms` (small: many slices) until no job runs; returns the ticks.
inline int run_jobs(Session& s, double budget_ms = 1.0, int max_ticks = 1000000) {
  int ticks = 0;
  while (!s.jobs().idle() && ticks < max_ticks) {
    s.tick(budget_ms);
    ++ticks;
  }
  return ticks;
}

// Loads m (as its safetensors files, with tokenizer.json text if given) into
// the app through the session's job, as the bundled model `id`.
inline void load(App& a, const Model& m, double budget_ms = 1.0, const std::string& tokenizer_json = {},
                 const std::string& id = "test") {
  Session& s = a.session();
  stage(s, save_model(m, tokenizer_json));
  s.load_staged(id, id, "", "bundled");
  run_jobs(s, budget_ms);
  ASSERT_EQ(s.error(), "");
  ASSERT_NE(s.shown(), nullptr);
}

}  // namespace cs::app::apptest
