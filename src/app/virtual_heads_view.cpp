// The Virtual heads view's selection, jobs and results (virtual_heads_view.h);
// drawing in virtual_heads_view_draw.cpp (page build only).
#include "app/virtual_heads_view.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"
#include "io/json_out.h"

namespace cs::app {

CS_REGISTER_VIEW(VirtualHeadsView, 45);

// ---- selection --------------------------------------------------------------------

Json VirtualHeadSelection::to_json() const {
  const bool chosen = earlier_layer >= 0;
  return Json{{"earlier", chosen ? head_json(earlier_layer, earlier_head) : Json(nullptr)},
              {"later", chosen ? head_json(later_layer, later_head) : Json(nullptr)},
              {"embed_norm", embed_norm},
              {"k", k},
              {"ov_source", ov_source},
              {"ov_out", ov_out}};
}

VirtualHeadSelection VirtualHeadSelection::from_json(const Json& j) {
  if (!j.is_object()) throw Error("virtual selection: expected an object");
  VirtualHeadSelection s;
  const auto earlier = json_head(j, "virtual", "earlier");
  const auto later = json_head(j, "virtual", "later");
  if (earlier.has_value() != later.has_value())
    throw Error(std::string("virtual selection: \"") + (earlier ? "later" : "earlier") +
                "\" is missing (give both heads, or neither for the largest virtual head)");
  if (earlier) {
    s.earlier_layer = earlier->layer;
    s.earlier_head = earlier->head;
    s.later_layer = later->layer;
    s.later_head = later->head;
  }
  s.embed_norm = json_bool(j, "virtual", "embed_norm", s.embed_norm);
  s.k = json_int(j, "virtual", "k", s.k);
  s.ov_source = json_int(j, "virtual", "ov_source", s.ov_source);
  s.ov_out = json_int(j, "virtual", "ov_out", s.ov_out);
  return s;
}

// ---- the view -----------------------------------------------------------------------

std::optional<VirtualHeadRef> VirtualHeadsView::shown_head(const Session& s) const {
  if (sel_.earlier_layer >= 0) return VirtualHeadRef{sel_.earlier_layer, sel_.earlier_head, sel_.later_layer, sel_.later_head};
  if (ranking_.holds(RankingKey{}, s.generation()) && !ranking_.value().empty()) return ranking_.value().front().head;
  return std::nullopt;
}

std::optional<VirtualQuery> VirtualHeadsView::query(const Session& s, int id) const {
  const auto h = shown_head(s);
  if (!h) return std::nullopt;
  return VirtualQuery{*h, sel_.embed_norm, id, sel_.k};
}

std::optional<VirtualKey> VirtualHeadsView::key(const Session& s) const {
  const auto h = shown_head(s);
  if (!h) return std::nullopt;
  return VirtualKey{*h, sel_.embed_norm};
}

void VirtualHeadsView::check_selection(const Session& s) const {
  if (sel_.earlier_layer < 0) return;
  const LoadedModel* m = s.shown();
  if (!m) return;
  const ModelConfig& c = m->model.config();
  auto bad = [&](const char* field, int l, int h) {
    return l < 0 || l >= c.n_layers || h < 0 || h >= c.n_heads
               ? std::string("virtual selection: \"") + field + "\" " + head_text(l, h) + " is not a head of the model (" +
                     std::to_string(c.n_layers) + " layers of " + std::to_string(c.n_heads) + " heads)"
               : std::string();
  };
  for (const std::string& e : {bad("earlier", sel_.earlier_layer, sel_.earlier_head), bad("later", sel_.later_layer, sel_.later_head)})
    if (!e.empty()) throw Error(e);
  if (sel_.earlier_layer >= sel_.later_layer)
    throw Error("virtual selection: \"earlier\" " + head_text(sel_.earlier_layer, sel_.earlier_head) +
                " must be in an earlier layer than \"later\" " + head_text(sel_.later_layer, sel_.later_head));
}

void VirtualHeadsView::clamp_tokens(const Session& s) {
  sel_.k = std::clamp(sel_.k, 1, std::max(1, std::min(s.vocab(), 1000)));
  sel_.ov_source = clamp_token(sel_.ov_source, s.vocab());
  sel_.ov_out = clamp_token(sel_.ov_out, s.vocab_out());
}

void VirtualHeadsView::apply_selection(Session& s) {
  check_selection(s);
  clamp_tokens(s);
  start(s);
}

void VirtualHeadsView::on_model(Session& s, ModelChange change) {
  for (const char* slot : {kRankingSlot, kOvOutsSlot, kOvSourcesSlot, kEigenSlot}) s.jobs().cancel(slot);
  ranking_.clear();
  ov_outs_.clear();
  ov_sources_.clear();
  eigen_.clear();
  if (change == ModelChange::NewModel) {
    // A new model: its largest virtual head, and a token students recognise in both explorers.
    VirtualHeadSelection fresh;
    fresh.k = sel_.k;
    fresh.embed_norm = sel_.embed_norm;
    sel_ = fresh;
    sel_.ov_source = sel_.ov_out = s.familiar_token();
  }
  try {
    check_selection(s);
  } catch (const Error&) {
    sel_.earlier_layer = -1;  // the chosen pair is not in these weights: the largest one
  }
  clamp_tokens(s);
  defer_until_shown();
}

void VirtualHeadsView::start(Session& s) {
  if (!begin_work(s)) return;
  const LoadedModel* m = s.shown();
  if (!m || m->model.config().n_layers < 2) {
    for (const char* slot : {kRankingSlot, kOvOutsSlot, kOvSourcesSlot, kEigenSlot}) s.jobs().cancel(slot);
    return;
  }
  weights_raw_ = !m->model.processing.any();
  start_ranking(s);
  start_head(s);
}

void VirtualHeadsView::start_ranking(Session& s) {
  const auto m = s.shown_shared();
  if (ranking_.freshness(RankingKey{}, s.generation(), s.jobs()).current()) return;
  const uint64_t generation = s.generation();
  JobOptions o;
  o.label = "virtual heads";
  o.keep = m;
  o.priority = 2;
  o.failed = job_failed(s);
  s.jobs().start<CompositionPlan>(
      kRankingSlot, std::make_unique<CompositionPlan>(m->model),
      [this, &s, generation](CompositionPlan& p) {
        ranking_.set(RankingKey{}, generation, rank_virtual_heads(p.result()));
        // With no head chosen the explorers wait for the largest one.
        if (sel_.earlier_layer < 0 && generation == s.generation()) start_head(s);
      },
      std::move(o));
}

void VirtualHeadsView::start_head(Session& s) {
  if (!shown_head(s)) return;  // the ranking's job starts it when done
  start_list(s, ov_outs_, kOvOutsSlot, true, sel_.ov_source);
  start_list(s, ov_sources_, kOvSourcesSlot, false, sel_.ov_out);
  start_eigen(s);
}

// A row (top k of row `id`: outs) or a column (top k of column `id`: sources)
// of the virtual head's OV circuit, as a job.
void VirtualHeadsView::start_list(Session& s, List& r, const char* slot, bool row, int id) {
  const auto m = s.shown_shared();
  const auto q = query(s, id);
  if (!m || !q) {
    s.jobs().cancel(slot);
    return;
  }
  const VirtualQuery key = *q;
  const uint64_t generation = s.generation();
  if (r.freshness(key, generation, s.jobs()).current()) return;
  const VirtualHeadRef v = key.head;
  const VocabMatrix M =
      virtual_ov_circuit_matrix(m->model, v.l1, v.h1, v.l2, v.h2, circuit_options(*m, key.embed_norm));
  JobOptions o;
  o.label = std::string("virtual OV ") + (row ? "row" : "column");
  o.keep = m;
  o.failed = job_failed(s);
  auto done = [&r, key, generation](auto& p) { r.set(key, generation, p.result()); };
  if (row)
    s.jobs().start<VocabRowTopK>(slot, std::make_unique<VocabRowTopK>(M, key.id, key.k), done, std::move(o));
  else
    s.jobs().start<VocabColumnTopK>(slot, std::make_unique<VocabColumnTopK>(M, key.id, key.k), done, std::move(o));
}

// From the d_head x d_head cyclic product (docs/two-layer.md), with the
// vocabulary sums the Session keeps (Session::embed_grams).
void VirtualHeadsView::start_eigen(Session& s) {
  const auto m = s.shown_shared();
  const auto k = key(s);
  if (!m || !k) return;
  const ModelConfig& c = m->model.config();
  if (c.d_vocab != c.vocab_out()) {  // no eigenvalues: the circuit is not square
    HeadEigen none;
    none.ov_score = none.qk_score = std::nan("");
    eigen_.set(*k, s.generation(), none);
    return;
  }
  const uint64_t generation = s.generation();
  if (eigen_.freshness(*k, generation, s.jobs()).current()) return;
  std::shared_ptr<const EmbedGrams> grams = s.embed_grams(k->embed_norm);
  JobOptions o;
  o.label = "eigenvalues";
  o.keep = m;
  o.priority = 1;
  o.failed = job_failed(s);
  const VirtualKey key = *k;
  s.jobs().start<HeadEigenPlan>(
      kEigenSlot,
      std::make_unique<HeadEigenPlan>(m->model, key.head, circuit_options(*m, key.embed_norm), grams),
      [this, &s, key, generation](HeadEigenPlan& p) {
        s.keep_embed_grams(key.embed_norm, generation, p.grams());
        eigen_.set(key, generation, p.result());
      },
      std::move(o));
}

// ---- intents --------------------------------------------------------------------------

void VirtualHeadsView::select_virtual_head(Session& s, int l1, int h1, int l2, int h2) {
  const VirtualHeadSelection previous = sel_;
  sel_.earlier_layer = l1;
  sel_.earlier_head = h1;
  sel_.later_layer = l2;
  sel_.later_head = h2;
  try {
    check_selection(s);
  } catch (...) {
    sel_ = previous;
    throw;
  }
  start(s);
}

void VirtualHeadsView::set_embed_norm(Session& s, bool on) {
  sel_.embed_norm = on;
  start(s);
}

void VirtualHeadsView::set_k(Session& s, int k) {
  sel_.k = k;
  clamp_tokens(s);
  start(s);
}

void VirtualHeadsView::select_ov_source(Session& s, int id) {
  sel_.ov_source = clamp_token(id, s.vocab());
  start_list(s, ov_outs_, kOvOutsSlot, true, sel_.ov_source);
}

void VirtualHeadsView::select_ov_out(Session& s, int id) {
  sel_.ov_out = clamp_token(id, s.vocab_out());
  start_list(s, ov_sources_, kOvSourcesSlot, false, sel_.ov_out);
}

// ---- state for tests ----------------------------------------------------------------

namespace {

Json virtual_head_json(const VirtualHeadRef& v) {
  return Json{{"earlier", head_json(v.l1, v.h1)}, {"later", head_json(v.l2, v.h2)}};
}

}  // namespace

Json VirtualHeadsView::state_json(const Session& s) const {
  const uint64_t gen = s.generation();
  const TokenDisplay display = s.token_display_fn();
  Json j;
  j["weights"] = weights_raw_ ? "raw" : "processed";
  Json r = freshness_json(ranking_.freshness(RankingKey{}, gen, s.jobs()));
  Json list = Json::array();
  if (ranking_.has())
    for (const VirtualHeadNorm& v : ranking_.value()) {
      Json e = virtual_head_json(v.head);
      e["norm"] = v.norm;
      e["v_composition"] = v.v_composition;
      list.push_back(e);
    }
  r["value"] = list;
  j["ranking"] = r;
  const auto head = shown_head(s);
  j["head"] = head ? virtual_head_json(*head) : Json(nullptr);
  auto lookup = [&](const List& l, int wanted_id) {
    const auto q = query(s, wanted_id);
    Json o = q ? freshness_json(l.freshness(*q, gen, s.jobs())) : freshness_json(Freshness{l.has(), l.has(), false, 0});
    if (l.has()) {
      const VirtualQuery& k = l.key();
      o["key"] = virtual_head_json(k.head);
      o["key"]["embed_norm"] = k.embed_norm;
      o["key"]["id"] = k.id;
      o["key"]["k"] = k.k;
    } else {
      o["key"] = nullptr;
    }
    std::vector<TokenValue> values;
    if (l.has())
      for (const auto& e : l.value()) values.push_back({e.id, e.value});
    o["value"] = token_values_json(values, display);
    return o;
  };
  j["ov_outs"] = lookup(ov_outs_, sel_.ov_source);
  j["ov_sources"] = lookup(ov_sources_, sel_.ov_out);
  const auto k = key(s);
  Json e = k ? freshness_json(eigen_.freshness(*k, gen, s.jobs()))
             : freshness_json(Freshness{eigen_.has(), eigen_.has(), false, 0});
  if (eigen_.has()) {
    e["key"] = virtual_head_json(eigen_.key().head);
    e["key"]["embed_norm"] = eigen_.key().embed_norm;
    const HeadEigen& v = eigen_.value();
    e["value"] = Json{{"ov", complex_list_json(v.ov)},
                      {"ov_copying_score", std::isnan(v.ov_score) ? Json(nullptr) : Json(v.ov_score)}};
  } else {
    e["key"] = nullptr;
    e["value"] = nullptr;
  }
  j["eigen"] = e;
  return j;
}

std::vector<ExportTable> VirtualHeadsView::tables(const Session& s) const {
  const Json st = state_json(s);
  std::vector<ExportTable> out;
  auto pair = [](const Json& v) { return v["earlier"].get<std::string>() + " -> " + v["later"].get<std::string>(); };
  if (!st["ranking"]["value"].empty()) {
    ExportTable t{"ranking", std::string("Virtual heads by the norm of their OV circuit (") + st["weights"].get<std::string>() + " weights)",
                  {"earlier", "later", "norm", "v_composition"}, {}};
    for (const Json& e : st["ranking"]["value"]) t.rows.push_back({e["earlier"], e["later"], e["norm"], e["v_composition"]});
    out.push_back(std::move(t));
  }
  auto list = [&](const char* key, const char* name, const char* what) {
    const Json& l = st[key];
    if (l["key"].is_null()) return;
    out.push_back(token_values_table(name, "Virtual head " + pair(l["key"]) + ": " + what + " '" +
                                               s.token_display(l["key"]["id"].get<int>()) + "'",
                                     "value", l["value"]));
  };
  list("ov_outs", "ov-out", "tokens written most when attending to");
  list("ov_sources", "ov-sources", "tokens that when attended to most raise");
  if (const Json& e = st["eigen"]; !e["value"].is_null()) {
    ExportTable t{"eigenvalues", "Eigenvalues of virtual head " + pair(e["key"]) + "'s OV circuit (copying score " +
                                     dump(e["value"]["ov_copying_score"]) + ")",
                  {"circuit", "rank", "real", "imaginary", "modulus"}, {}};
    add_eigenvalue_rows(t, "OV", e["value"]["ov"]);
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace cs::app
