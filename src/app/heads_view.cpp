// The Heads view's selection, job and results (heads_view.h); drawing in
// heads_view_draw.cpp (page build only).
#include "app/heads_view.h"

#include <cmath>

#include "core/error.h"
#include "io/json_out.h"

namespace cs::app {

CS_REGISTER_VIEW(HeadsView, 10);

Json HeadsSelection::to_json() const { return Json{{"embed_norm", embed_norm}, {"diagonal", diagonal}}; }

HeadsSelection HeadsSelection::from_json(const Json& j) {
  if (!j.is_object()) throw Error("heads selection: expected an object");
  HeadsSelection s;
  s.embed_norm = json_bool(j, "heads", "embed_norm", s.embed_norm);
  s.diagonal = json_bool(j, "heads", "diagonal", s.diagonal);
  return s;
}

void HeadsView::on_model(Session& s, ModelChange change) {
  // Old results are never shown for another model or other weights.
  summary_.clear();
  if (change == ModelChange::NewModel) sel_.diagonal = diagonal_is_quick(s);
  // Full-vocabulary work waits until the tab is shown (View::shown).
  s.jobs().cancel(kSummarySlot);
  defer_until_shown();
}

// The diagonal test scans every head's full vocab x vocab OV circuit. It is on
// by default when that is at most 2e10 multiply-adds (a few seconds in wasm:
// 2048 tokens, 8 heads of 16 take 5e8); on a 48,262-token model with 16 heads
// of 64 it is 2.4e12 (minutes), so it waits for the user to tick it.
bool HeadsView::diagonal_is_quick(const Session& s) {
  const LoadedModel* m = s.shown();
  if (!m) return true;
  const ModelConfig& c = m->model.config();
  const double cost = double(c.d_vocab) * double(c.vocab_out()) * double(c.d_head) * double(c.n_layers * c.n_heads);
  return cost <= 2e10;
}

void HeadsView::start(Session& s) {
  if (!begin_work(s)) return;
  const auto m = s.shown_shared();
  if (!m || m->model.config().n_layers == 0) {
    s.jobs().cancel(kSummarySlot);
    return;
  }
  const HeadsSelection key = sel_;
  const uint64_t generation = s.generation();
  const bool raw = !m->model.processing.any();
  HeadSummaryOptions opt;
  opt.circuit = circuit_options(*m, key.embed_norm);
  opt.diagonal = key.diagonal;
  opt.grams = s.embed_grams(key.embed_norm);
  JobOptions o;
  o.label = "head summaries";
  o.keep = m;
  o.priority = 2;
  o.failed = job_failed(s);
  s.jobs().start<HeadSummaryPlan>(
      kSummarySlot, std::make_unique<HeadSummaryPlan>(m->model, opt),
      [this, &s, key, generation, raw](HeadSummaryPlan& p) {
        summary_.set(key, generation, p.result());
        s.keep_embed_grams(key.embed_norm, generation, p.grams());
        weights_raw_ = raw;
      },
      std::move(o));
}

void HeadsView::set_embed_norm(Session& s, bool on) {
  sel_.embed_norm = on;
  start(s);
}

void HeadsView::set_diagonal(Session& s, bool on) {
  sel_.diagonal = on;
  start(s);
}

Json HeadsView::state_json(const Session& s) const {
  const Freshness f = summary_.freshness(sel_, s.generation(), s.jobs());
  Json j = freshness_json(f);
  j["key"] = summary_.has() ? summary_.key().to_json() : Json(nullptr);
  j["weights"] = weights_raw_ ? "raw" : "processed";
  Json heads = Json::array();
  if (summary_.has())
    for (const auto& h : summary_.value()) heads.push_back(head_summary_json(h));
  j["value"] = heads;
  return Json{{"summary", j}};
}

std::vector<ExportTable> HeadsView::tables(const Session&) const {
  if (!summary_.has()) return {};
  const char* weights = weights_raw_ ? "raw" : "processed";
  ExportTable heads{"heads", std::string("Every head's scores (") + weights + " weights)",
                    {"head", "layer", "index", "ov_copying_score", "qk_copying_score", "positional_share",
                     "ov_diagonal_top1", "ov_diagonal_top5", "attn_current", "attn_previous"}, {}};
  ExportTable eig{"eigenvalues", "Eigenvalues of each head's OV and QK circuits",
                  {"head", "circuit", "rank", "real", "imaginary", "modulus"}, {}};
  // As the state and the CLI write them: floats, null where not computed.
  auto num = [](double v) { return std::isfinite(v) ? Json(float(v)) : Json(nullptr); };
  for (const HeadSummary& h : summary_.value()) {
    heads.rows.push_back({Json(head_text(h.layer, h.head)), Json(h.layer), Json(h.head), num(h.ov_copying_score),
                          num(h.qk_copying_score), num(h.positional_share), num(h.ov_diagonal_top1),
                          num(h.ov_diagonal_top5), num(h.attn_current), num(h.attn_previous)});
    for (const auto& [name, values] : {std::pair{"OV", &h.ov_eigenvalues}, std::pair{"QK", &h.qk_eigenvalues}})
      for (size_t i = 0; i < values->size(); ++i)
        eig.rows.push_back({Json(head_text(h.layer, h.head)), Json(name), Json(i + 1), num((*values)[i].real()),
                            num((*values)[i].imag()), num(std::abs((*values)[i]))});
  }
  return {std::move(heads), std::move(eig)};
}

}  // namespace cs::app
