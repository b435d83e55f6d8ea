// Fuzz target: a link's query (app/link.h), as anyone can edit it, against
// the page's registered views with a small two-layer model shown: parsed,
// applied to the views, and the page's own link of the result parsed back,
// which must then have nothing to refuse.
#include <cstring>
#include <string>

#include "app/app.h"
#include "app/link.h"
#include "fuzz_input.h"
#include "io/model_io.h"
#include "test_models.h"  // tests/unit: the view tests' small model and tokenizer

namespace {

cs::app::App& shown_app() {
  static cs::app::App* app = [] {
    auto* a = new cs::app::App;
    const cs::Model m = cs::testmodels::small_ln_model(2, 32, 7, 0.3f);
    cs::app::Session& s = a->session();
    for (const auto& [name, bytes] : cs::save_model(m, cs::testmodels::wordlevel_tokenizer(m.config().d_vocab))) {
      uint8_t* p = s.stage_file(name, bytes.size());
      if (!p) __builtin_trap();
      if (!bytes.empty()) std::memcpy(p, bytes.data(), bytes.size());
    }
    s.load_staged("fuzz", "fuzz", "", "bundled");
    for (int i = 0; i < 100000 && !s.jobs().idle(); ++i) s.tick(50.0);
    if (!s.shown() || !s.error().empty()) __builtin_trap();
    return a;
  }();
  return *app;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  cs::app::App& app = shown_app();
  const std::string_view query(reinterpret_cast<const char*>(data), size);
  const cs::app::Link link = cs::app::parse_link(query, app);
  for (const std::string& p : link.problems)
    if (p.empty() || p.find('\n') != std::string::npos) __builtin_trap();  // one-line reasons
  std::vector<std::string> problems;
  cs::app::apply_link(app, link, problems);
  const cs::app::Link again = cs::app::parse_link(cs::app::link_query(app), app);
  if (!again.problems.empty()) __builtin_trap();  // the page's own link is always accepted
  return 0;
}
