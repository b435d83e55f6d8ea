// The Composition view's selection, jobs and results (composition_view.h);
// drawing in composition_view_draw.cpp (page build only).
#include "app/composition_view.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"
#include "core/induction.h"
#include "io/json_out.h"

namespace cs::app {

CS_REGISTER_VIEW(CompositionView, 40);

Json CompositionSelection::to_json() const {
  return Json{{"prev", prev_layer < 0 ? Json(nullptr) : head_json(prev_layer, prev_head)}, {"embed_norm", embed_norm}};
}

CompositionSelection CompositionSelection::from_json(const Json& j) {
  if (!j.is_object()) throw Error("composition selection: expected an object");
  CompositionSelection s;
  s.embed_norm = json_bool(j, "composition", "embed_norm", s.embed_norm);
  if (const auto h = json_head(j, "composition", "prev")) {
    s.prev_layer = h->layer;
    s.prev_head = h->head;
  }
  return s;
}

void CompositionView::on_model(Session& s, ModelChange) {
  scores_.clear();
  scatter_.clear();
  s.jobs().cancel(kScoresSlot);
  s.jobs().cancel(kScatterSlot);
  // A chosen head may not exist in the new model: back to the detector's choice.
  if (const LoadedModel* m = s.shown()) {
    const ModelConfig& c = m->model.config();
    if (sel_.prev_layer >= c.n_layers - 1 || sel_.prev_head >= c.n_heads) sel_.prev_layer = -1;
  }
  defer_until_shown();
}

void CompositionView::apply_selection(Session& s) {
  if (const LoadedModel* m = s.shown()) {
    const ModelConfig& c = m->model.config();
    if (sel_.prev_layer >= 0 && (sel_.prev_layer >= c.n_layers - 1 || sel_.prev_head >= c.n_heads))
      throw Error("composition selection: prev " + std::to_string(sel_.prev_layer) + "." +
                  std::to_string(sel_.prev_head) + " is not a head of a layer before the last (" +
                  std::to_string(c.n_layers) + " layers of " + std::to_string(c.n_heads) + " heads)");
  }
  start(s);
}

void CompositionView::start(Session& s) {
  if (!begin_work(s)) return;
  start_scores(s);
  start_scatter(s);
}

void CompositionView::start_scores(Session& s) {
  const auto m = s.shown_shared();
  if (!m || m->model.config().n_layers < 2) {
    s.jobs().cancel(kScoresSlot);
    return;
  }
  if (scores_.holds(ScoresKey{}, s.generation())) return;
  const uint64_t generation = s.generation();
  JobOptions o;
  o.label = "composition scores";
  o.keep = m;
  o.priority = 2;
  o.failed = job_failed(s);
  s.jobs().start<CompositionPlan>(
      kScoresSlot, std::make_unique<CompositionPlan>(m->model),
      [this, generation](CompositionPlan& p) { scores_.set(ScoresKey{}, generation, p.result()); }, std::move(o));
}

void CompositionView::start_scatter(Session& s) {
  const auto m = s.shown_shared();
  if (!m || m->model.config().n_layers < 2) {
    s.jobs().cancel(kScatterSlot);
    return;
  }
  const CompositionSelection key = sel_;
  if (scatter_.holds(key, s.generation())) return;
  const ModelConfig& c = m->model.config();
  std::vector<std::vector<int>> seqs;
  if (key.prev_layer < 0) {
    const int bos = bos_or_none(*m);
    const int room = c.has_pos() ? (c.n_ctx - (bos >= 0 ? 1 : 0)) / kRepeats : kTokens;
    seqs = repeated_random_tokens(c.d_vocab, std::clamp(room, 1, kTokens), kRepeats, kExamples, 0, bos);
  }
  const uint64_t generation = s.generation();
  JobOptions o;
  o.label = "induction scatter";
  o.keep = m;
  o.priority = 2;
  o.failed = job_failed(s);
  std::unique_ptr<InductionScatterPlan> plan;
  try {
    plan = std::make_unique<InductionScatterPlan>(m->model, circuit_options(*m, key.embed_norm), key.prev_layer,
                                                  key.prev_head, std::move(seqs), s.embed_grams(key.embed_norm));
  } catch (const Error& e) {
    s.jobs().cancel(kScatterSlot);
    s.set_error(e.what());
    return;
  }
  s.jobs().start<InductionScatterPlan>(
      kScatterSlot, std::move(plan),
      [this, &s, key, generation](InductionScatterPlan& p) {
        scatter_.set(key, generation, p.result());
        s.keep_embed_grams(key.embed_norm, generation, p.grams());
      },
      std::move(o));
}

void CompositionView::set_previous_head(Session& s, int layer, int head) {
  sel_.prev_layer = layer;
  sel_.prev_head = layer < 0 ? 0 : head;
  start_scatter(s);
}

void CompositionView::set_embed_norm(Session& s, bool on) {
  sel_.embed_norm = on;
  start_scatter(s);
}

Json CompositionView::state_json(const Session& s) const {
  Json sc = freshness_json(scores_.freshness(ScoresKey{}, s.generation(), s.jobs()));
  if (scores_.has()) {
    const CompositionScores& r = scores_.value();
    sc["value"] = Json{{"Q", head_pairs_json(r.Q, r.n_layers, r.n_heads)},
                       {"K", head_pairs_json(r.K, r.n_layers, r.n_heads)},
                       {"V", head_pairs_json(r.V, r.n_layers, r.n_heads)},
                       {"baseline", r.baseline}};
  } else {
    sc["value"] = nullptr;
  }
  Json st = freshness_json(scatter_.freshness(sel_, s.generation(), s.jobs()));
  if (scatter_.has()) {
    const InductionScatter& r = scatter_.value();
    st["value"] = induction_scatter_json(r.prev_layer, r.prev_head, r.points);
    st["value"]["found"] = scatter_.key().prev_layer < 0;
  } else {
    st["value"] = nullptr;
  }
  return Json{{"scores", sc}, {"scatter", st}};
}

std::vector<ExportTable> CompositionView::tables(const Session& s) const {
  const Json st = state_json(s);
  std::vector<ExportTable> out;
  if (const Json& sc = st["scores"]["value"]; !sc.is_null()) {
    ExportTable t{"scores",
                  "Composition scores of each earlier head with each later head (baseline " + dump(sc["baseline"]) + ")",
                  {"earlier", "later", "Q", "K", "V"}, {}};
    const Json& Q = sc["Q"];
    for (size_t l1 = 0; l1 < Q.size(); ++l1)
      for (size_t h1 = 0; h1 < Q[l1].size(); ++h1)
        for (size_t l2 = l1 + 1; l2 < Q[l1][h1].size(); ++l2)
          for (size_t h2 = 0; h2 < Q[l1][h1][l2].size(); ++h2)
            t.rows.push_back({Json(head_text(int(l1), int(h1))), Json(head_text(int(l2), int(h2))),
                              Q[l1][h1][l2][h2], sc["K"][l1][h1][l2][h2], sc["V"][l1][h1][l2][h2]});
    out.push_back(std::move(t));
  }
  if (const Json& sp = st["scatter"]["value"]; !sp.is_null()) {
    const std::string prev = head_text(sp["previous_head"]["layer"].get<int>(), sp["previous_head"]["head"].get<int>());
    ExportTable t{"induction-scatter", "Induction scatter with previous-token head " + prev,
                  {"head", "ov_positivity", "k_term_positivity"}, {}};
    for (const Json& p : sp["heads"])
      t.rows.push_back({Json(head_text(p["layer"].get<int>(), p["head"].get<int>())), p["ov_positivity"],
                        p["k_term_positivity"]});
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace cs::app
