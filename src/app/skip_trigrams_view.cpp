// The Skip-trigrams view's selection, job and results (skip_trigrams_view.h);
// drawing in skip_trigrams_view_draw.cpp (page build only).
#include "app/skip_trigrams_view.h"

#include <algorithm>
#include <memory>
#include <tuple>

#include "core/error.h"
#include "io/json_out.h"

namespace cs::app {

CS_REGISTER_VIEW(SkipTrigramsView, 12);

namespace {

// One head's scan or every head's, run one after the other (each scan's units
// become units of this plan, so it slices like any other), then merged by
// score (ties: layer, head, then the scan's own order).
class HeadsTrigramPlan final : public WorkPlan {
 public:
  HeadsTrigramPlan(const Model& m, const SkipTrigramsKey& key) {
    CircuitOptions opt;
    opt.normalize_embed = key.embed_norm;
    SkipTrigramQuery q;
    q.top_n = key.top_n;
    q.per_source_k = key.per_source_k;
    if (key.source >= 0) q.source = key.source;
    if (key.destination >= 0) q.destination = key.destination;
    if (key.out >= 0) q.out = key.out;
    const ModelConfig& c = m.config();
    top_n_ = key.top_n;
    for (int l = 0; l < c.n_layers; ++l)
      for (int h = 0; h < c.n_heads; ++h) {
        if (!key.all_heads && (l != key.layer || h != key.head)) continue;
        scans_.push_back({l, h, std::make_unique<SkipTrigramScan>(m, l, h, opt, q)});
      }
    for (auto& sc : scans_) {
      WorkPlan* p = sc.plan.get();
      const std::string stage = "skip-trigrams of head " + std::to_string(sc.layer) + "." + std::to_string(sc.head);
      add_units_of(p, p->units(), stage, 1.0);
    }
    add("ranking", 1.0, [this] { merge(); });
  }
  const std::vector<HeadTrigram>& result() const { return result_; }

 private:
  void merge() {
    for (auto& sc : scans_) {
      const SkipTrigramResult& r = sc.plan->result();
      for (const SkipTrigram& t : r.trigrams) result_.push_back({sc.layer, sc.head, t, r.qk_rms, r.ov_rms});
      sc.plan.reset();
    }
    std::stable_sort(result_.begin(), result_.end(), [](const HeadTrigram& a, const HeadTrigram& b) {
      if (a.t.score != b.t.score) return a.t.score > b.t.score;
      return std::tie(a.layer, a.head) < std::tie(b.layer, b.head);
    });
    if (result_.size() > size_t(top_n_)) result_.resize(size_t(top_n_));
  }
  struct Scan {
    int layer, head;
    std::unique_ptr<SkipTrigramScan> plan;
  };
  std::vector<Scan> scans_;
  int top_n_ = 0;
  std::vector<HeadTrigram> result_;
};

Json trigram_json(const HeadTrigram& e, const TokenDisplay& display) {
  Json j{{"layer", e.layer}, {"head", e.head}};
  j.update(skip_trigram_json(e.t, display));
  return j;
}

}  // namespace

// ---- selection ------------------------------------------------------------------------

Json SkipTrigramsSelection::to_json() const {
  return Json{{"layer", layer},   {"head", head},         {"all_heads", all_heads},
              {"embed_norm", embed_norm}, {"top_n", top_n}, {"per_source_k", per_source_k},
              {"source", source}, {"destination", destination}, {"out", out},
              {"bug_a", bug_a},   {"bug_b", bug_b}};
}

SkipTrigramsSelection SkipTrigramsSelection::from_json(const Json& j) {
  if (!j.is_object()) throw Error("skip_trigrams selection: expected an object");
  SkipTrigramsSelection s;
  const char* v = "skip_trigrams";
  s.layer = json_int(j, v, "layer", s.layer);
  s.head = json_int(j, v, "head", s.head);
  s.all_heads = json_bool(j, v, "all_heads", s.all_heads);
  s.embed_norm = json_bool(j, v, "embed_norm", s.embed_norm);
  s.top_n = json_int(j, v, "top_n", s.top_n);
  s.per_source_k = json_int(j, v, "per_source_k", s.per_source_k);
  s.source = json_int(j, v, "source", s.source);
  s.destination = json_int(j, v, "destination", s.destination);
  s.out = json_int(j, v, "out", s.out);
  s.bug_a = json_int(j, v, "bug_a", s.bug_a);
  s.bug_b = json_int(j, v, "bug_b", s.bug_b);
  return s;
}

// ---- the view ----------------------------------------------------------------------------

SkipTrigramsKey SkipTrigramsView::table_key() const {
  return {sel_.layer,  sel_.head,         sel_.all_heads, sel_.embed_norm, sel_.top_n,
          sel_.per_source_k, sel_.source, sel_.destination, sel_.out};
}

void SkipTrigramsView::clamp_selection(const Session& s) {
  const LoadedModel* m = s.shown();
  const ModelConfig* c = m ? &m->model.config() : nullptr;
  sel_.layer = c ? std::clamp(sel_.layer, 0, std::max(0, c->n_layers - 1)) : 0;
  sel_.head = c ? std::clamp(sel_.head, 0, std::max(0, c->n_heads - 1)) : 0;
  sel_.top_n = std::clamp(sel_.top_n, 1, 1000);
  sel_.per_source_k = std::clamp(sel_.per_source_k, 1, 50);
  auto filter = [](int id, int n) { return id < 0 || id >= n ? -1 : id; };
  sel_.source = filter(sel_.source, s.vocab());
  sel_.destination = filter(sel_.destination, s.vocab());
  sel_.out = filter(sel_.out, s.vocab_out());
}

void SkipTrigramsView::apply_selection(Session& s) {
  clamp_selection(s);
  start(s);
}

void SkipTrigramsView::on_model(Session& s, ModelChange change) {
  table_.clear();
  bug_.reset();
  bug_note_.clear();
  if (change == ModelChange::NewModel) {
    SkipTrigramsSelection fresh;
    fresh.top_n = sel_.top_n;
    fresh.embed_norm = sel_.embed_norm;
    sel_ = fresh;
  }
  clamp_selection(s);
  // The scans wait until the tab is shown (View::shown).
  s.jobs().cancel(kTableSlot);
  defer_until_shown();
}

void SkipTrigramsView::start(Session& s) {
  if (!begin_work(s)) return;
  const auto m = s.shown_shared();
  if (!m || m->model.config().n_layers == 0) {
    s.jobs().cancel(kTableSlot);
    return;
  }
  weights_raw_ = !m->model.processing.any();
  const SkipTrigramsKey key = table_key();
  const uint64_t generation = s.generation();
  JobOptions o;
  o.label = "skip-trigrams";
  o.keep = m;
  o.priority = 1;
  o.failed = job_failed(s);
  s.jobs().start<HeadsTrigramPlan>(
      kTableSlot, std::make_unique<HeadsTrigramPlan>(m->model, key),
      [this, &s, key, generation](HeadsTrigramPlan& p) {
        table_.set(key, generation, p.result());
        compute_bug(s);
      },
      std::move(o));
}

// The cross terms of the two chosen rows (a few dot products: at once).
void SkipTrigramsView::compute_bug(Session& s) {
  bug_.reset();
  bug_note_.clear();
  const LoadedModel* m = s.shown();
  if (!m || !table_.has() || sel_.bug_a < 0 || sel_.bug_b < 0) return;
  const auto& rows = table_.value();
  if (size_t(sel_.bug_a) >= rows.size() || size_t(sel_.bug_b) >= rows.size() || sel_.bug_a == sel_.bug_b) {
    bug_note_ = "pick two different rows of the table";
    return;
  }
  const HeadTrigram& a = rows[size_t(sel_.bug_a)];
  const HeadTrigram& b = rows[size_t(sel_.bug_b)];
  if (a.layer != b.layer || a.head != b.head || a.t.source != b.t.source) {
    bug_note_ = "the two trigrams must come from the same head and share their source token";
    return;
  }
  const CircuitOptions opt = circuit_options(*m, table_.key().embed_norm);
  bug_ = skip_trigram_bugs(m->model, a.layer, a.head, a.t, b.t, a.qk_rms, a.ov_rms, opt);
  bug_layer_ = a.layer;
  bug_head_ = a.head;
  bug_rows_[0] = sel_.bug_a;
  bug_rows_[1] = sel_.bug_b;
}

void SkipTrigramsView::set_head(Session& s, int layer, int head, bool all_heads) {
  forget_bug();
  sel_.layer = layer;
  sel_.head = head;
  sel_.all_heads = all_heads;
  clamp_selection(s);
  start(s);
}

void SkipTrigramsView::set_embed_norm(Session& s, bool on) {
  forget_bug();
  sel_.embed_norm = on;
  start(s);
}

void SkipTrigramsView::set_top_n(Session& s, int n) {
  sel_.top_n = n;
  clamp_selection(s);
  start(s);
}

void SkipTrigramsView::set_filters(Session& s, int source, int destination, int out) {
  forget_bug();
  sel_.source = source;
  sel_.destination = destination;
  sel_.out = out;
  clamp_selection(s);
  start(s);
}

// The table is about to change: the chosen pair and its cross terms go.
void SkipTrigramsView::forget_bug() {
  bug_.reset();
  sel_.bug_a = sel_.bug_b = -1;
}

void SkipTrigramsView::choose_bug_pair(Session& s, int a, int b) {
  sel_.bug_a = a;
  sel_.bug_b = b;
  compute_bug(s);
}

// ---- state for tests ----------------------------------------------------------------------

Json SkipTrigramsView::state_json(const Session& s) const {
  const TokenDisplay display = s.token_display_fn();
  const Freshness f = table_.freshness(table_key(), s.generation(), s.jobs());
  Json t = freshness_json(f);
  if (table_.has()) {
    const SkipTrigramsKey& k = table_.key();
    t["key"] = Json{{"layer", k.layer}, {"head", k.head}, {"all_heads", k.all_heads},
                    {"embed_norm", k.embed_norm}, {"top_n", k.top_n}, {"per_source_k", k.per_source_k},
                    {"source", k.source}, {"destination", k.destination}, {"out", k.out}};
  } else {
    t["key"] = nullptr;
  }
  t["weights"] = weights_raw_ ? "raw" : "processed";
  Json rows = Json::array();
  if (table_.has())
    for (const auto& e : table_.value()) rows.push_back(trigram_json(e, display));
  t["value"] = rows;
  Json b;
  b["key"] = bug_ ? Json::array({bug_rows_[0], bug_rows_[1]}) : Json(nullptr);
  if (bug_) {
    b["value"] = Json::array({trigram_json({bug_layer_, bug_head_, bug_->a_destination_b_out, 0, 0}, display),
                              trigram_json({bug_layer_, bug_head_, bug_->b_destination_a_out, 0, 0}, display)});
  } else {
    b["value"] = nullptr;
  }
  b["note"] = bug_note_;
  return Json{{"table", t}, {"bug", b}};
}

std::vector<ExportTable> SkipTrigramsView::tables(const Session& s) const {
  const Json t = state_json(s)["table"];
  if (t["key"].is_null()) return {};
  const std::string who = t["key"]["all_heads"].get<bool>()
                              ? std::string("every head")
                              : "head " + head_text(t["key"]["layer"].get<int>(), t["key"]["head"].get<int>());
  ExportTable out{"skip-trigrams", "Skip-trigrams '[source] ... [destination] -> [out]' of " + who + " (" +
                                       t["weights"].get<std::string>() + " weights)",
                  {"head", "source_id", "source", "destination_id", "destination", "out_id", "out", "score", "qk", "ov"}, {}};
  for (const Json& e : t["value"])
    out.rows.push_back({Json(head_text(e["layer"].get<int>(), e["head"].get<int>())), e["source"]["id"],
                        e["source"]["token"], e["destination"]["id"], e["destination"]["token"], e["out"]["id"],
                        e["out"]["token"], e["score"], e["qk"], e["ov"]});
  return {std::move(out)};
}

}  // namespace cs::app
