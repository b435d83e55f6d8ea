// The Induction view's selection, job and results (induction_view.h); drawing
// in induction_view_draw.cpp (page build only).
#include "app/induction_view.h"

#include <cmath>
#include <string>

#include "core/error.h"
#include "io/json_out.h"

namespace cs::app {

CS_REGISTER_VIEW(InductionView, 50);

Json InductionSelection::to_json() const {
  return Json{{"tokens", tokens},
              {"repeats", repeats},
              {"examples", examples},
              {"seed", seed},
              {"head", layer < 0 ? Json(nullptr) : head_json(layer, head)}};
}

InductionSelection InductionSelection::from_json(const Json& j) {
  if (!j.is_object()) throw Error("induction selection: expected an object");
  InductionSelection s;
  s.tokens = json_int(j, "induction", "tokens", s.tokens);
  s.repeats = json_int(j, "induction", "repeats", s.repeats);
  s.examples = json_int(j, "induction", "examples", s.examples);
  s.seed = json_int(j, "induction", "seed", s.seed);
  if (s.tokens < 1 || s.tokens > 4096) throw Error("induction selection: tokens " + std::to_string(s.tokens) + " is outside [1, 4096]");
  if (s.repeats < 2 || s.repeats > 64) throw Error("induction selection: repeats " + std::to_string(s.repeats) + " is outside [2, 64]");
  if (s.examples < 1 || s.examples > 100) throw Error("induction selection: examples " + std::to_string(s.examples) + " is outside [1, 100]");
  if (s.seed < 0) throw Error("induction selection: seed " + std::to_string(s.seed) + " is negative");
  if (const auto h = json_head(j, "induction", "head")) {
    s.layer = h->layer;
    s.head = h->head;
  }
  return s;
}

void InductionView::on_model(Session& s, ModelChange) {
  experiment_.clear();
  s.jobs().cancel(kSlot);
  if (const LoadedModel* m = s.shown()) {
    const ModelConfig& c = m->model.config();
    if (sel_.layer >= c.n_layers || sel_.head >= c.n_heads) sel_.layer = -1;
  }
  defer_until_shown();
}

void InductionView::apply_selection(Session& s) {
  if (const LoadedModel* m = s.shown()) {
    const ModelConfig& c = m->model.config();
    if (sel_.layer >= 0 && (sel_.layer >= c.n_layers || sel_.head >= c.n_heads))
      throw Error("induction selection: head " + std::to_string(sel_.layer) + "." + std::to_string(sel_.head) +
                  " is outside the model (" + std::to_string(c.n_layers) + " layers of " + std::to_string(c.n_heads) +
                  " heads)");
  }
  start(s);
}

void InductionView::start(Session& s) {
  if (!begin_work(s)) return;
  const auto m = s.shown_shared();
  if (!m || m->model.config().n_layers == 0) {
    s.jobs().cancel(kSlot);
    return;
  }
  const Key k = key();
  if (experiment_.holds(k, s.generation())) return;
  const int bos = bos_or_none(*m);
  // The head badges ran this very experiment when these are its parameters (the defaults).
  if (const HeadBadges* b = s.badges()) {
    const InductionExperiment& e = b->experiment;
    if (e.tokens == k.tokens && e.repeats == k.repeats && e.examples == k.examples && e.seed == uint64_t(k.seed) &&
        e.bos == bos) {
      s.jobs().cancel(kSlot);
      experiment_.set(k, s.generation(), e);
      return;
    }
  }
  std::unique_ptr<InductionExperimentPlan> plan;
  try {
    plan = std::make_unique<InductionExperimentPlan>(m->model, k.tokens, k.repeats, k.examples, uint64_t(k.seed), bos,
                                                     circuit_options(*m, true));
  } catch (const Error& e) {
    s.jobs().cancel(kSlot);
    s.set_error(e.what());
    return;
  }
  const uint64_t generation = s.generation();
  JobOptions o;
  o.label = "repeated random tokens";
  o.keep = m;
  o.priority = 2;
  o.failed = job_failed(s);
  s.jobs().start<InductionExperimentPlan>(
      kSlot, std::move(plan),
      [this, k, generation](InductionExperimentPlan& p) { experiment_.set(k, generation, p.result()); },
      std::move(o));
}

void InductionView::set_experiment(Session& s, int tokens, int repeats, int examples, int seed) {
  InductionSelection next = sel_;
  next.tokens = tokens;
  next.repeats = repeats;
  next.examples = examples;
  next.seed = seed;
  sel_ = InductionSelection::from_json(next.to_json());  // the same range checks as a link
  start(s);
}

void InductionView::set_head(int layer, int head) {
  sel_.layer = layer;
  sel_.head = layer < 0 ? 0 : head;
}

HeadId InductionView::shown_head() const {
  if (sel_.layer >= 0) return HeadId{sel_.layer, sel_.head};
  if (!experiment_.has()) return HeadId{};
  const RowMat& pm = experiment_.value().prefix_matching;
  Eigen::Index l = 0, h = 0;
  if (pm.size() > 0 && pm.allFinite()) pm.maxCoeff(&l, &h);
  return HeadId{int(l), int(h)};
}

Json InductionView::state_json(const Session& s) const {
  Json j = freshness_json(experiment_.freshness(key(), s.generation(), s.jobs()));
  if (!experiment_.has()) {
    j["value"] = nullptr;
    return Json{{"experiment", j}};
  }
  const InductionExperiment& r = experiment_.value();
  const HeadId h = shown_head();
  Json v;
  v["tokens"] = r.tokens;
  v["repeats"] = r.repeats;
  v["examples"] = r.examples;
  v["seed"] = r.seed;
  v["bos"] = r.bos >= 0 ? Json(r.bos) : Json(nullptr);
  v["prefix_matching"] = matrix_json(r.prefix_matching);
  v["previous_token"] = matrix_json(r.previous_token);
  v["copying"] = matrix_json(r.copying);
  v["loss_first"] = r.loss.first;
  v["loss_repeat"] = r.loss.repeats;
  v["loss_by_position"] = r.loss_by_position;
  v["head"] = Json{{"layer", h.layer}, {"head", h.head}};
  const size_t idx = size_t(h.layer) * size_t(r.prefix_matching.cols()) + size_t(h.head);
  v["pattern"] = idx < r.patterns.size() ? matrix_json(r.patterns[idx]) : Json(nullptr);
  j["value"] = v;
  return Json{{"experiment", j}};
}

std::vector<ExportTable> InductionView::tables(const Session& s) const {
  const Json v = state_json(s)["experiment"]["value"];
  if (v.is_null()) return {};
  const std::string setup = std::to_string(v["examples"].get<int>()) + " sequences of " +
                            std::to_string(v["tokens"].get<int>()) + " random tokens repeated " +
                            std::to_string(v["repeats"].get<int>()) + " times";
  ExportTable heads{"heads", "Induction scores of every head on " + setup,
                    {"head", "prefix_matching", "previous_token", "copying"}, {}};
  for (size_t l = 0; l < v["prefix_matching"].size(); ++l)
    for (size_t h = 0; h < v["prefix_matching"][l].size(); ++h)
      heads.rows.push_back({Json(head_text(int(l), int(h))), v["prefix_matching"][l][h], v["previous_token"][l][h],
                            v["copying"][l][h]});
  ExportTable loss{"loss-by-position", "Loss at each position of the repeated sequences (" + setup + ")",
                   {"position", "loss"}, {}};
  for (size_t t = 0; t < v["loss_by_position"].size(); ++t) loss.rows.push_back({Json(t), v["loss_by_position"][t]});
  std::vector<ExportTable> out{std::move(heads), std::move(loss)};
  if (!v["pattern"].is_null()) {
    std::vector<std::string> labels;
    for (size_t t = 0; t < v["pattern"].size(); ++t) labels.push_back(std::to_string(t));
    out.push_back(matrix_table("pattern", "Attention pattern of head " + head_text(v["head"]["layer"].get<int>(), v["head"]["head"].get<int>()) +
                                              " on the first sequence: row = query position, column = key position",
                               "query", labels, labels, v["pattern"]));
  }
  return out;
}

}  // namespace cs::app
