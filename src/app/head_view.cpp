// The Head view's selection, jobs and results (head_view.h); drawing in
// head_view_draw.cpp (page build only).
#include "app/head_view.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "io/json_out.h"

namespace cs::app {

CS_REGISTER_VIEW(HeadView, 11);

// ---- selection --------------------------------------------------------------------

Json HeadSelection::to_json() const {
  return Json{{"layer", layer},           {"head", head},     {"embed_norm", embed_norm},
              {"k", k},                   {"ov_source", ov_source}, {"ov_out", ov_out},
              {"qk_destination", qk_destination}, {"qk_source", qk_source},
              {"pos_first", pos_first},   {"pos_count", pos_count}};
}

HeadSelection HeadSelection::from_json(const Json& j) {
  if (!j.is_object()) throw Error("head selection: expected an object");
  HeadSelection s;
  s.layer = json_int(j, "head", "layer", s.layer);
  s.head = json_int(j, "head", "head", s.head);
  s.embed_norm = json_bool(j, "head", "embed_norm", s.embed_norm);
  s.k = json_int(j, "head", "k", s.k);
  s.ov_source = json_int(j, "head", "ov_source", s.ov_source);
  s.ov_out = json_int(j, "head", "ov_out", s.ov_out);
  s.qk_destination = json_int(j, "head", "qk_destination", s.qk_destination);
  s.qk_source = json_int(j, "head", "qk_source", s.qk_source);
  s.pos_first = json_int(j, "head", "pos_first", s.pos_first);
  s.pos_count = json_int(j, "head", "pos_count", s.pos_count);
  return s;
}

// ---- the view -----------------------------------------------------------------------

void HeadView::clamp_selection(const Session& s) {
  const LoadedModel* m = s.shown();
  const ModelConfig* c = m ? &m->model.config() : nullptr;
  sel_.layer = c ? std::clamp(sel_.layer, 0, std::max(0, c->n_layers - 1)) : 0;
  sel_.head = c ? std::clamp(sel_.head, 0, std::max(0, c->n_heads - 1)) : 0;
  sel_.k = std::clamp(sel_.k, 1, std::max(1, std::min(s.vocab(), 1000)));
  sel_.ov_source = clamp_token(sel_.ov_source, s.vocab());
  sel_.ov_out = clamp_token(sel_.ov_out, s.vocab_out());
  sel_.qk_destination = clamp_token(sel_.qk_destination, s.vocab());
  sel_.qk_source = clamp_token(sel_.qk_source, s.vocab());
  const int n_ctx = c ? c->n_ctx : 1;
  sel_.pos_count = std::clamp(sel_.pos_count, 1, std::min(64, std::max(1, n_ctx)));
  sel_.pos_first = std::clamp(sel_.pos_first, 0, std::max(0, n_ctx - sel_.pos_count));
}

void HeadView::apply_selection(Session& s) {
  clamp_selection(s);
  start_all(s);
}

void HeadView::on_model(Session& s, ModelChange change) {
  for (Ranking* r : {&ov_outs_, &ov_sources_, &qk_sources_, &qk_destinations_}) {
    r->clear();
    s.jobs().cancel(r->slot());
  }
  eigen_.clear();
  positional_.clear();
  s.jobs().cancel(kEigenSlot);
  if (change == ModelChange::NewModel) {
    // A new model: start at head 0.0 and a token students recognise, in every explorer.
    HeadSelection fresh;
    fresh.k = sel_.k;
    fresh.embed_norm = sel_.embed_norm;
    sel_ = fresh;
    sel_.ov_source = sel_.ov_out = sel_.qk_destination = sel_.qk_source = s.familiar_token();
  }
  clamp_selection(s);
  // The scans wait until the tab is shown (View::shown).
  defer_until_shown();
}

void HeadView::start_all(Session& s) {
  if (!begin_work(s)) return;
  const LoadedModel* m = s.shown();
  if (!m || m->model.config().n_layers == 0) {
    for (const char* slot : {kOvOutsSlot, kOvSourcesSlot, kQkSourcesSlot, kQkDestinationsSlot, kEigenSlot})
      s.jobs().cancel(slot);
    return;
  }
  weights_raw_ = !m->model.processing.any();
  start_rankings(s);
  start_eigen(s);
  compute_positional(s);
}

void HeadView::start_rankings(Session& s) {
  start_ranking(s, ov_outs_, kOvOutsSlot, true, true, sel_.ov_source);
  start_ranking(s, ov_sources_, kOvSourcesSlot, true, false, sel_.ov_out);
  start_ranking(s, qk_sources_, kQkSourcesSlot, false, true, sel_.qk_destination);
  start_ranking(s, qk_destinations_, kQkDestinationsSlot, false, false, sel_.qk_source);
}

// A row (top k of row `id`) or a column (top k of column `id`) of the head's
// OV or QK matrix, as a job; a job still running for an older input is dropped.
void HeadView::start_ranking(Session& s, Ranking& r, const char* slot, bool ov, bool row, int id) {
  const auto m = s.shown_shared();
  if (!m || m->model.config().n_layers == 0) {
    s.jobs().cancel(slot);
    return;
  }
  const CircuitQuery key = query(id);
  const uint64_t generation = s.generation();
  // A selection set as a whole (URL, JSON) often changes one lookup: the others stay.
  if (r.freshness(key, generation, s.jobs()).current()) return;
  const CircuitOptions opt = circuit_options(*m, key.embed_norm);
  const VocabMatrix M = ov ? ov_circuit_matrix(m->model, key.layer, key.head, opt)
                           : qk_circuit_matrix(m->model, key.layer, key.head, opt);
  JobOptions o;
  o.label = std::string(ov ? "OV " : "QK ") + (row ? "row" : "column");
  o.keep = m;
  o.failed = job_failed(s);
  auto done = [&r, key, generation](auto& q) { r.set(key, generation, q.result()); };
  if (row)
    s.jobs().start<VocabRowTopK>(slot, std::make_unique<VocabRowTopK>(M, key.id, key.k), done, std::move(o));
  else
    s.jobs().start<VocabColumnTopK>(slot, std::make_unique<VocabColumnTopK>(M, key.id, key.k), done, std::move(o));
}

// Eigenvalues come from the d_head x d_head products (docs/one-layer.md), made
// from the vocabulary sums: one sliced pass over W_E per model and embed_norm,
// kept by the Session for the next head and the other views, then each
// head's small products, all units of one job (HeadEigenPlan).
void HeadView::start_eigen(Session& s) {
  const auto m = s.shown_shared();
  if (!m) return;
  const bool embed_norm = sel_.embed_norm;
  const uint64_t generation = s.generation();
  const HeadKey key = head_key();
  if (eigen_.freshness(key, generation, s.jobs()).current()) return;
  // The vocabulary sums of this model and option, when a job computed them (Session::embed_grams).
  std::shared_ptr<const EmbedGrams> grams = s.embed_grams(embed_norm);
  JobOptions o;
  o.label = "eigenvalues";
  o.keep = m;
  o.priority = 1;
  o.failed = job_failed(s);
  s.jobs().start<HeadEigenPlan>(
      kEigenSlot,
      std::make_unique<HeadEigenPlan>(m->model, key.layer, key.head, circuit_options(*m, embed_norm), grams),
      [this, &s, embed_norm, generation, key](HeadEigenPlan& p) {
        s.keep_embed_grams(embed_norm, generation, p.grams());
        eigen_.set(key, generation, p.result());
      },
      std::move(o));
}

// At most 64 x 64 positions of P W_Q W_K^T P^T: computed at once.
void HeadView::compute_positional(Session& s) {
  const LoadedModel* m = s.shown();
  if (!m || m->model.config().positional == PosEmbed::None) {
    positional_.clear();
    return;
  }
  const CircuitOptions opt = circuit_options(*m, sel_.embed_norm);
  std::vector<int> pos(size_t(sel_.pos_count));
  for (int i = 0; i < sel_.pos_count; ++i) pos[size_t(i)] = sel_.pos_first + i;
  const QkTerms t = qk_terms(m->model, sel_.layer, sel_.head, {}, pos, {}, pos, opt);
  positional_.set(positional_key(), s.generation(), t.position_position);
}

// ---- intents --------------------------------------------------------------------------

void HeadView::select_head(Session& s, int layer, int head) {
  sel_.layer = layer;
  sel_.head = head;
  clamp_selection(s);
  start_all(s);
}

void HeadView::set_embed_norm(Session& s, bool on) {
  sel_.embed_norm = on;
  start_all(s);
}

void HeadView::set_k(Session& s, int k) {
  sel_.k = k;
  clamp_selection(s);
  start_rankings(s);
}

void HeadView::select_ov_source(Session& s, int id) {
  sel_.ov_source = clamp_token(id, s.vocab());
  start_ranking(s, ov_outs_, kOvOutsSlot, true, true, sel_.ov_source);
}

void HeadView::select_ov_out(Session& s, int id) {
  sel_.ov_out = clamp_token(id, s.vocab_out());
  start_ranking(s, ov_sources_, kOvSourcesSlot, true, false, sel_.ov_out);
}

void HeadView::select_qk_destination(Session& s, int id) {
  sel_.qk_destination = clamp_token(id, s.vocab());
  start_ranking(s, qk_sources_, kQkSourcesSlot, false, true, sel_.qk_destination);
}

void HeadView::select_qk_source(Session& s, int id) {
  sel_.qk_source = clamp_token(id, s.vocab());
  start_ranking(s, qk_destinations_, kQkDestinationsSlot, false, false, sel_.qk_source);
}

void HeadView::set_positions(Session& s, int first, int count) {
  sel_.pos_first = first;
  sel_.pos_count = count;
  clamp_selection(s);
  compute_positional(s);
}

// ---- state for tests ----------------------------------------------------------------

Json HeadView::state_json(const Session& s) const {
  const uint64_t gen = s.generation();
  const TokenDisplay display = s.token_display_fn();
  auto head_json = [](int layer, int head, bool embed_norm) {
    return Json{{"layer", layer}, {"head", head}, {"embed_norm", embed_norm}};
  };
  auto ranking = [&](const Ranking& r, int wanted_id) {
    Json j = freshness_json(r.freshness(query(wanted_id), gen, s.jobs()));
    if (r.has()) {
      const CircuitQuery& k = r.key();
      j["key"] = head_json(k.layer, k.head, k.embed_norm);
      j["key"]["id"] = k.id;
      j["key"]["k"] = k.k;
    } else {
      j["key"] = nullptr;
    }
    std::vector<TokenValue> list;
    if (r.has())
      for (const auto& e : r.value()) list.push_back({e.id, e.value});
    j["value"] = token_values_json(list, display);
    return j;
  };
  Json j;
  j["weights"] = weights_raw_ ? "raw" : "processed";
  j["ov_outs"] = ranking(ov_outs_, sel_.ov_source);
  j["ov_sources"] = ranking(ov_sources_, sel_.ov_out);
  j["qk_sources"] = ranking(qk_sources_, sel_.qk_destination);
  j["qk_destinations"] = ranking(qk_destinations_, sel_.qk_source);
  Json e = freshness_json(eigen_.freshness(head_key(), gen, s.jobs()));
  e["key"] = eigen_.has() ? head_json(eigen_.key().layer, eigen_.key().head, eigen_.key().embed_norm) : Json(nullptr);
  if (eigen_.has()) {
    const HeadEigen& v = eigen_.value();
    e["value"] = Json{{"ov", complex_list_json(v.ov)},
                      {"qk", complex_list_json(v.qk)},
                      {"ov_copying_score", std::isnan(v.ov_score) ? Json(nullptr) : Json(float(v.ov_score))},
                      {"qk_copying_score", float(v.qk_score)}};
  } else {
    e["value"] = nullptr;
  }
  j["eigen"] = e;
  Json p = freshness_json(positional_.freshness(positional_key(), gen, s.jobs()));
  p["key"] = positional_.has() ? Json{{"first", positional_.key().first}, {"count", positional_.key().count}}
                               : Json(nullptr);
  p["value"] = positional_.has() ? matrix_json(positional_.value()) : Json::array();
  j["positional"] = p;
  return j;
}

std::vector<ExportTable> HeadView::tables(const Session& s) const {
  const Json st = state_json(s);
  std::vector<ExportTable> out;
  auto list = [&](const char* key, const char* name, const char* what) {
    const Json& l = st[key];
    if (l["key"].is_null()) return;
    const std::string head = head_text(l["key"]["layer"].get<int>(), l["key"]["head"].get<int>());
    out.push_back(token_values_table(name, "Head " + head + ": " + what + " '" + s.token_display(l["key"]["id"].get<int>()) + "'",
                                     "value", l["value"]));
  };
  list("ov_outs", "ov-out", "OV circuit, tokens written most when attending to");
  list("ov_sources", "ov-sources", "OV circuit, tokens that when attended to most raise");
  list("qk_sources", "qk-sources", "QK circuit, tokens most attended to from");
  list("qk_destinations", "qk-destinations", "QK circuit, tokens that attend most to");
  if (const Json& e = st["eigen"]; !e["value"].is_null()) {
    const std::string head = head_text(e["key"]["layer"].get<int>(), e["key"]["head"].get<int>());
    ExportTable t{"eigenvalues", "Eigenvalues of head " + head + "'s OV and QK circuits (copying score OV " +
                                     dump(e["value"]["ov_copying_score"]) + ", QK " + dump(e["value"]["qk_copying_score"]) + ")",
                  {"circuit", "rank", "real", "imaginary", "modulus"}, {}};
    add_eigenvalue_rows(t, "OV", e["value"]["ov"]);
    add_eigenvalue_rows(t, "QK", e["value"]["qk"]);
    out.push_back(std::move(t));
  }
  if (const Json& p = st["positional"]; !p["key"].is_null() && !p["value"].empty()) {
    const int first = p["key"]["first"].get<int>(), count = p["key"]["count"].get<int>();
    std::vector<std::string> labels;
    for (int i = 0; i < count; ++i) labels.push_back(std::to_string(first + i));
    out.push_back(matrix_table("positional", "Position-only attention scores: row = query position, column = key position",
                               "query", labels, labels, p["value"]));
  }
  return out;
}

}  // namespace cs::app
