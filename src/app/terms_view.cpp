// The Term importance view's selection, job and results (terms_view.h);
// drawing in terms_view_draw.cpp (page build only).
#include "app/terms_view.h"

#include <cmath>
#include <string>
#include <utility>

#include "core/error.h"
#include "io/model_io.h"

namespace cs::app {

CS_REGISTER_VIEW(TermsView, 55);

namespace {

// Python written for this sample: names come back (induction has something to
// do) and it is a few windows of the bundled models' 128 tokens.
constexpr const char* kDefaultSample =
    "import json\n"
    "from pathlib import Path\n"
    "\n"
    "\n"
    "class Settings:\n"
    "    \"\"\"Settings read from a JSON file, with defaults.\"\"\"\n"
    "\n"
    "    def __init__(self, path, defaults=None):\n"
    "        self.path = Path(path)\n"
    "        self.defaults = dict(defaults or {})\n"
    "        self.values = {}\n"
    "\n"
    "    def load(self):\n"
    "        if self.path.exists():\n"
    "            with self.path.open() as f:\n"
    "                self.values = json.load(f)\n"
    "        return self\n"
    "\n"
    "    def get(self, key):\n"
    "        if key in self.values:\n"
    "            return self.values[key]\n"
    "        return self.defaults.get(key)\n"
    "\n"
    "    def save(self):\n"
    "        with self.path.open('w') as f:\n"
    "            json.dump(self.values, f, indent=2)\n"
    "\n"
    "\n"
    "settings = Settings('settings.json', defaults={'color': 'blue'}).load()\n"
    "print(settings.get('color'))\n";

}  // namespace

TermsSelection::TermsSelection() : text(kDefaultSample) {}

Json TermsSelection::to_json() const { return Json{{"text", text}, {"max_order", max_order}}; }

TermsSelection TermsSelection::from_json(const Json& j) {
  if (!j.is_object()) throw Error("terms selection: expected an object");
  TermsSelection s;
  s.text = json_text(j, "terms", "text", s.text);
  s.max_order = json_int(j, "terms", "max_order", s.max_order);
  if (s.max_order < 1 || s.max_order > 3)
    throw Error("terms selection: \"max_order\" " + std::to_string(s.max_order) + " is outside [1, 3]");
  return s;
}

void TermsView::on_model(Session& s, ModelChange change) {
  importance_.clear();
  if (change == ModelChange::NewModel) text_across_.on_model(s.shown(), sel_.text);
  s.jobs().cancel(kSlot);
  defer_until_shown();
}

void TermsView::apply_selection(Session& s) { start(s); }

void TermsView::set_text(Session& s, const std::string& text, int max_order) {
  TermsSelection next = sel_;
  next.text = text;
  next.max_order = max_order;
  sel_ = TermsSelection::from_json(next.to_json());  // the same checks as a link
  start(s);
}

void TermsView::start(Session& s) {
  if (!begin_work(s)) return;
  const auto m = s.shown_shared();
  if (!m || m->model.config().n_layers == 0) {
    s.jobs().cancel(kSlot);
    return;
  }
  if (importance_.holds(sel_, s.generation())) {
    s.jobs().cancel(kSlot);
    return;
  }
  std::unique_ptr<TermImportancePlan> plan;
  int windows = 0;
  try {
    const int bos = bos_or_none(*m);
    std::vector<std::vector<int>> w = prompt_windows(text_tokens(*m, sel_.text), m->model.config(), bos);
    windows = int(w.size());
    plan = std::make_unique<TermImportancePlan>(m->model, std::move(w), sel_.max_order);
  } catch (const Error& e) {
    s.jobs().cancel(kSlot);
    s.set_error(std::string("term importance: ") + e.what());
    return;
  }
  const uint64_t generation = s.generation();
  JobOptions o;
  o.label = "term importance";
  o.keep = m;
  o.priority = 2;
  o.failed = job_failed(s);
  s.jobs().start<TermImportancePlan>(
      kSlot, std::move(plan),
      [this, key = sel_, generation, windows](TermImportancePlan& p) {
        importance_.set(key, generation, Value{p.result(), windows});
      },
      std::move(o));
}

Json TermsView::state_json(const Session& s) const {
  Json j = freshness_json(importance_.freshness(sel_, s.generation(), s.jobs()));
  if (!importance_.has()) {
    j["value"] = nullptr;
    return Json{{"importance", j}};
  }
  const TermImportance& t = importance_.value().importance;
  Json terms = Json::array();
  for (size_t i = 0; i < t.terms.size(); ++i)
    terms.push_back(Json{{"name", t.terms[i].name()},
                         {"order", t.terms[i].order()},
                         {"loss_without", t.loss_without[i]},
                         {"effect", t.loss_without[i] - t.loss_full}});
  const LoadedModel* m = s.shown();
  j["value"] = Json{{"windows", importance_.value().windows},
                    {"tokens", t.tokens},
                    {"max_order", importance_.key().max_order},
                    {"loss_full", t.loss_full},
                    {"loss_by_order", t.loss_by_order},
                    {"uniform", m ? std::log(double(m->model.config().vocab_out())) : 0.0},
                    {"terms", terms}};
  return Json{{"importance", j}};
}

std::vector<ExportTable> TermsView::tables(const Session& s) const {
  const Json v = state_json(s)["importance"]["value"];
  if (v.is_null()) return {};
  ExportTable terms{"terms", "Each path term's importance: the loss without it (full loss " + dump(v["loss_full"]) + ")",
                    {"term", "order", "loss_without", "effect"}, {}};
  for (const Json& e : v["terms"]) terms.rows.push_back({e["name"], e["order"], e["loss_without"], e["effect"]});
  ExportTable orders{"loss-by-order", "Loss keeping the terms up to each order", {"order", "loss"}, {}};
  for (size_t o = 0; o < v["loss_by_order"].size(); ++o) orders.rows.push_back({Json(o), v["loss_by_order"][o]});
  return {std::move(terms), std::move(orders)};
}

}  // namespace cs::app
