// The Prompt view's selection, jobs and results (prompt_view.h); drawing in
// prompt_view_draw.cpp (page build only).
#include "app/prompt_view.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "core/error.h"
#include "io/json_out.h"

namespace cs::app {

CS_REGISTER_VIEW(PromptView, 60);

namespace {

// Python, as the bundled models read it: `OrderedDict` comes back at the end,
// where the induction heads predict its second token from the first time.
constexpr const char* kDefaultText =
    "from collections import OrderedDict\n"
    "\n"
    "def last_seen(items):\n"
    "    seen = OrderedDict()\n"
    "    for item in items:\n"
    "        seen[item] = True\n"
    "    return list(seen)\n"
    "\n"
    "cache = Ordered";

Json top_json(const Session& s, const LogitSummary& sum, int position) {
  Json top = Json::array();
  if (position < 0 || size_t(position) >= sum.positions()) return top;
  for (int i = 0; i < sum.k; ++i)
    top.push_back(Json{{"id", sum.top_id(size_t(position), i)},
                       {"token", s.token_display(sum.top_id(size_t(position), i))},
                       {"logit", sum.top_logit(size_t(position), i)},
                       {"prob", std::exp(sum.top_log_prob(size_t(position), i))}});
  return top;
}

Json loss_json(float v) { return std::isfinite(v) ? Json(v) : Json(nullptr); }

// The path expansion at one position as a job (PathsAtPlan's units), then
// the chosen token's contributions and logit.
class SplitPlan final : public WorkPlan {
 public:
  SplitPlan(std::shared_ptr<const LoadedModel> m, std::shared_ptr<const PromptRun> run, int position, int token)
      : m_(std::move(m)), run_(std::move(run)), paths_(m_->model, run_->cache, 2, position) {
    add_units_of(&paths_, paths_.units(), "logit split by path", 1.0);
    add("logit split by path", 1.0, [this, position, token] {
      const Model& model = m_->model;
      const PathExpansion p = paths_.take();
      const Vec parts = path_logit_contributions(model, p, position, token);
      split_.position = position;
      split_.token = token;
      split_.terms = p.terms;
      split_.contribution.assign(parts.data(), parts.data() + parts.size());
      // The logit itself, from the run's last residual stream.
      RowMat x = run_->cache.resid.back().row(position);
      normalize_rows(model, x, -1);
      split_.logit = x.row(0).dot(model.W_U().col(token).transpose()) + model.b_U()[token];
    });
  }
  PromptSplit& result() { return split_; }

 private:
  std::shared_ptr<const LoadedModel> m_;
  std::shared_ptr<const PromptRun> run_;
  PathsAtPlan paths_;
  PromptSplit split_;
};

}  // namespace

PromptSelection::PromptSelection() : text(kDefaultText) {}

Json PromptSelection::to_json() const {
  Json abl = Json::array();
  for (const HeadId& h : ablate) abl.push_back(head_json(h.layer, h.head));
  return Json{{"text", text},
              {"position", position < 0 ? Json(nullptr) : Json(position)},
              {"head", head_json(layer, head)},
              {"token", token < 0 ? Json(nullptr) : Json(token)},
              {"ablate", abl}};
}

PromptSelection PromptSelection::from_json(const Json& j) {
  if (!j.is_object()) throw Error("prompt selection: expected an object");
  PromptSelection s;
  s.text = json_text(j, "prompt", "text", s.text);
  auto optional_index = [&j](const char* name) {
    if (!j.contains(name) || j.at(name).is_null()) return -1;
    const int v = json_int(j, "prompt", name, -1);
    if (v < 0) throw Error(std::string("prompt selection: \"") + name + "\" " + std::to_string(v) + " is negative");
    return v;
  };
  s.position = optional_index("position");
  s.token = optional_index("token");
  if (const auto h = json_head(j, "prompt", "head")) {
    s.layer = h->layer;
    s.head = h->head;
  }
  if (j.contains("ablate")) {
    const Json& a = j.at("ablate");
    if (!a.is_array()) throw Error("prompt selection: \"ablate\" must be a list of heads (\"L.H\")");
    for (const Json& e : a) {
      const auto h = json_head(Json{{"ablate", e}}, "prompt", "ablate");
      if (!h) throw Error("prompt selection: \"ablate\" holds a null");
      s.ablate.push_back(*h);
    }
    std::sort(s.ablate.begin(), s.ablate.end());
    s.ablate.erase(std::unique(s.ablate.begin(), s.ablate.end()), s.ablate.end());
  }
  return s;
}

// ---- model changes and selections ----------------------------------------------

void PromptView::on_model(Session& s, ModelChange change) {
  for (const char* slot : {kRunSlot, kAblatedSlot, kSplitSlot}) s.jobs().cancel(slot);
  run_.clear();
  ablated_.clear();
  split_.clear();
  hover_ = -1;
  if (change == ModelChange::NewModel) {
    // The text is the user's; what refers to the old model goes.
    sel_.position = sel_.token = -1;
    sel_.layer = sel_.head = 0;
    sel_.ablate.clear();
    text_across_.on_model(s.shown(), sel_.text);
  }
  defer_until_shown();
}

void PromptView::apply_selection(Session& s) {
  if (const LoadedModel* m = s.shown()) {
    const ModelConfig& c = m->model.config();
    auto check = [&c](HeadId h, const char* field) {
      if (h.layer >= c.n_layers || h.head >= c.n_heads)
        throw Error(std::string("prompt selection: \"") + field + "\" " + head_text(h.layer, h.head) +
                    " is outside the model (" + std::to_string(c.n_layers) + " layers of " +
                    std::to_string(c.n_heads) + " heads)");
    };
    if (c.n_layers > 0) check(HeadId{sel_.layer, sel_.head}, "head");
    for (const HeadId& h : sel_.ablate) check(h, "ablate");
    if (sel_.token >= c.vocab_out())
      throw Error("prompt selection: \"token\" " + std::to_string(sel_.token) + " is outside [0, d_vocab_out = " +
                  std::to_string(c.vocab_out()) + ")");
    if (sel_.position >= c.n_ctx && c.has_pos())
      throw Error("prompt selection: \"position\" " + std::to_string(sel_.position) + " is outside [0, n_ctx = " +
                  std::to_string(c.n_ctx) + ")");
  }
  start(s);
}

void PromptView::set_text(Session& s, const std::string& text) {
  sel_.text = checked_text(text, "prompt", "text");
  sel_.position = sel_.token = -1;
  hover_ = -1;
  start(s);
}

void PromptView::click_token(Session& s, int position) {
  sel_.position = sel_.position == position ? -1 : position;
  sel_.token = -1;  // the top prediction of the new position
  start_split(s);
}

void PromptView::set_head(int layer, int head) {
  sel_.layer = layer;
  sel_.head = head;
}

void PromptView::set_token(Session& s, int token) {
  sel_.token = token;
  start_split(s);
}

void PromptView::toggle_ablate(Session& s, HeadId h) {
  auto it = std::lower_bound(sel_.ablate.begin(), sel_.ablate.end(), h);
  if (it != sel_.ablate.end() && *it == h)
    sel_.ablate.erase(it);
  else
    sel_.ablate.insert(it, h);
  start_ablated(s);
}

void PromptView::clear_ablate(Session& s) {
  sel_.ablate.clear();
  start_ablated(s);
}

// ---- what is shown ----------------------------------------------------------------

int PromptView::position() const {
  const int T = run_.has() ? int(run_.value()->ids.size()) : 0;
  if (sel_.position >= 0 && sel_.position < T) return sel_.position;
  return T - 1;
}

int PromptView::split_token() const {
  if (sel_.token >= 0) return sel_.token;
  const int p = position();
  if (p < 0 || run_.value()->summary.k == 0) return -1;
  return run_.value()->summary.top_id(size_t(p), 0);
}

const PromptRun* PromptView::held_run(const Session& s) const {
  return run_.holds(sel_.text, s.generation()) ? run_.value().get() : nullptr;
}

// ---- jobs -------------------------------------------------------------------------

void PromptView::start(Session& s) {
  if (!begin_work(s)) return;
  const auto m = s.shown_shared();
  if (!m || m->model.config().n_layers == 0) {
    for (const char* slot : {kRunSlot, kAblatedSlot, kSplitSlot}) s.jobs().cancel(slot);
    return;
  }
  if (held_run(s)) {
    s.jobs().cancel(kRunSlot);
    start_ablated(s);
    start_split(s);
    return;
  }
  std::vector<int> ids;
  bool truncated = false;
  try {
    ids = text_tokens(*m, sel_.text);
    const ModelConfig& c = m->model.config();
    if (c.has_pos() && ids.size() > size_t(c.n_ctx)) {
      ids.resize(size_t(c.n_ctx));
      truncated = true;
    }
  } catch (const Error& e) {
    s.jobs().cancel(kRunSlot);
    s.set_error(std::string("prompt: ") + e.what());
    return;
  }
  ForwardOptions o;
  o.keep_cache = true;
  o.summarize = true;
  o.top_k = kTopK;
  auto plan = std::make_unique<ForwardPlan>(m->model, ids, o);
  const uint64_t generation = s.generation();
  JobOptions jo;
  jo.label = "forward pass of the prompt";
  jo.keep = m;
  jo.priority = 1;
  jo.failed = job_failed(s);
  s.jobs().start<ForwardPlan>(
      kRunSlot, std::move(plan),
      [this, &s, text = sel_.text, ids = std::move(ids), truncated, generation](ForwardPlan& p) {
        ForwardResult r = p.take();
        auto run = std::make_shared<PromptRun>();
        run->ids = ids;
        run->truncated = truncated;
        run->cache = std::move(r.cache);
        run->cache.head_out.clear();  // not drawn; the largest part of the cache
        run->summary = std::move(r.summary);
        run_.set(text, generation, std::move(run));
        if (s.generation() != generation) return;
        start_ablated(s);
        start_split(s);
      },
      std::move(jo));
}

void PromptView::start_ablated(Session& s) {
  const PromptRun* run = held_run(s);
  const auto m = s.shown_shared();
  if (!run || !m || sel_.ablate.empty()) {
    s.jobs().cancel(kAblatedSlot);
    return;
  }
  const AblatedKey key{sel_.text, sel_.ablate};
  if (ablated_.holds(key, s.generation())) {
    s.jobs().cancel(kAblatedSlot);
    return;
  }
  const ModelConfig& c = m->model.config();
  ForwardOptions o;
  o.keep_cache = false;
  o.summarize = true;
  o.top_k = kTopK;
  o.frozen_patterns = run->cache.pattern;
  o.ablate.assign(size_t(c.n_layers) * size_t(c.n_heads), 0);
  for (const HeadId& h : sel_.ablate) o.ablate[size_t(h.layer) * size_t(c.n_heads) + size_t(h.head)] = 1;
  auto plan = std::make_unique<ForwardPlan>(m->model, run->ids, o);
  const uint64_t generation = s.generation();
  JobOptions jo;
  jo.label = "forward pass with the ablated heads";
  jo.keep = m;
  jo.priority = 1;
  jo.failed = job_failed(s);
  s.jobs().start<ForwardPlan>(
      kAblatedSlot, std::move(plan),
      [this, key, generation](ForwardPlan& p) { ablated_.set(key, generation, p.take().summary); }, std::move(jo));
}

void PromptView::start_split(Session& s) {
  const PromptRun* run = held_run(s);
  const auto m = s.shown_shared();
  const int position = this->position(), token = split_token();
  if (!run || !m || position < 0 || token < 0) {
    s.jobs().cancel(kSplitSlot);
    return;
  }
  const SplitKey key{sel_.text, position, token};
  if (split_.holds(key, s.generation())) {
    s.jobs().cancel(kSplitSlot);
    return;
  }
  auto plan = std::make_unique<SplitPlan>(m, run_.value(), position, token);
  const uint64_t generation = s.generation();
  JobOptions jo;
  jo.label = "logit split by path";
  jo.keep = m;
  jo.priority = 1;
  jo.failed = job_failed(s);
  s.jobs().start<SplitPlan>(
      kSplitSlot, std::move(plan),
      [this, key, generation](SplitPlan& p) { split_.set(key, generation, std::move(p.result())); }, std::move(jo));
}

// ---- state --------------------------------------------------------------------------

Json PromptView::state_json(const Session& s) const {
  Json out;
  {
    Json j = freshness_json(run_.freshness(sel_.text, s.generation(), s.jobs()));
    if (!run_.has()) {
      j["value"] = nullptr;
    } else {
      const PromptRun& r = *run_.value();
      const int H = int(s.shown() ? s.shown()->model.config().n_heads : 0);
      Json v;
      v["text"] = run_.key();
      v["ids"] = r.ids;
      Json toks = Json::array();
      for (int id : r.ids) toks.push_back(s.token_display(id));
      v["tokens"] = toks;
      v["truncated"] = r.truncated;
      v["loss"] = loss_json(r.summary.loss());
      v["losses"] = r.summary.losses();
      v["position"] = position();
      v["locked"] = sel_.position >= 0 ? Json(sel_.position) : Json(nullptr);
      v["focus"] = focus() >= 0 ? Json(focus()) : Json(nullptr);
      v["head"] = Json{{"layer", sel_.layer}, {"head", sel_.head}};
      const size_t idx = size_t(sel_.layer) * size_t(H) + size_t(sel_.head);
      const bool has_pattern = H > 0 && idx < r.cache.pattern.size();
      const int p0 = pattern_first(), n = position() - p0 + 1;
      v["pattern"] = has_pattern ? matrix_json(RowMat(r.cache.pattern[idx].block(p0, p0, n, n))) : Json(nullptr);
      v["pattern_first"] = p0;
      const int f = focus();
      if (has_pattern && f >= 0 && f < int(r.ids.size())) {
        const auto row = r.cache.pattern[idx].row(f);
        v["focus_attention"] = std::vector<float>(row.data(), row.data() + row.size());
      } else {
        v["focus_attention"] = nullptr;
      }
      v["top"] = top_json(s, r.summary, position());
      j["value"] = v;
    }
    out["run"] = j;
  }
  {
    const AblatedKey key{sel_.text, sel_.ablate};
    Json j = freshness_json(ablated_.freshness(key, s.generation(), s.jobs()));
    if (!ablated_.has() || sel_.ablate.empty()) {
      j["value"] = nullptr;
    } else {
      const LogitSummary& a = ablated_.value();
      Json heads = Json::array();
      for (const HeadId& h : ablated_.key().heads) heads.push_back(Json{{"layer", h.layer}, {"head", h.head}});
      j["value"] = Json{{"heads", heads}, {"loss", loss_json(a.loss())}, {"losses", a.losses()},
                        {"top", top_json(s, a, position())}};
    }
    out["ablated"] = j;
  }
  {
    const int token = run_.has() ? split_token() : -1;
    const SplitKey key{sel_.text, position(), token};
    Json j = freshness_json(split_.freshness(key, s.generation(), s.jobs()));
    if (!split_.has()) {
      j["value"] = nullptr;
    } else {
      const PromptSplit& p = split_.value();
      Json terms = Json::array();
      for (size_t i = 0; i < p.terms.size(); ++i)
        terms.push_back(
            Json{{"name", p.terms[i].name()}, {"order", p.terms[i].order()}, {"contribution", p.contribution[i]}});
      j["value"] = Json{{"position", p.position},
                        {"token", Json{{"id", p.token}, {"token", s.token_display(p.token)}}},
                        {"logit", p.logit},
                        {"terms", terms}};
    }
    out["split"] = j;
  }
  return out;
}

std::vector<ExportTable> PromptView::tables(const Session& s) const {
  const Json st = state_json(s);
  const Json& run = st["run"]["value"];
  if (run.is_null()) return {};
  std::vector<ExportTable> out;
  const Json& ablated = st["ablated"]["value"];
  ExportTable toks{"tokens", "The text's tokens and the loss of predicting the next one", {"position", "id", "token", "loss"}, {}};
  if (!ablated.is_null()) toks.columns.push_back("loss_ablated");
  for (size_t t = 0; t < run["ids"].size(); ++t) {
    const bool last = t + 1 >= run["ids"].size();
    std::vector<Json> row{Json(t), run["ids"][t], run["tokens"][t], last ? Json(nullptr) : run["losses"][t]};
    if (!ablated.is_null()) row.push_back(last ? Json(nullptr) : ablated["losses"][t]);
    toks.rows.push_back(std::move(row));
  }
  out.push_back(std::move(toks));
  const int position = run["position"].get<int>();
  ExportTable pred{"predictions", "Most likely next tokens after position " + std::to_string(position),
                   {"rank", "id", "token", "logit", "probability"}, {}};
  for (size_t i = 0; i < run["top"].size(); ++i) {
    const Json& e = run["top"][i];
    pred.rows.push_back({Json(i + 1), e["id"], e["token"], e["logit"], e["prob"]});
  }
  out.push_back(std::move(pred));
  if (!run["pattern"].is_null()) {
    const int p0 = run["pattern_first"].get<int>();
    const std::string head = head_text(run["head"]["layer"].get<int>(), run["head"]["head"].get<int>());
    ExportTable att{"attention", "Attention pattern of head " + head + ": row = query position, column = key position",
                    {"query"}, {}};
    for (size_t j = 0; j < run["pattern"].size(); ++j) att.columns.push_back(std::to_string(p0 + int(j)));
    for (size_t i = 0; i < run["pattern"].size(); ++i) {
      std::vector<Json> row{Json(p0 + int(i))};
      for (const Json& v : run["pattern"][i]) row.push_back(v);
      att.rows.push_back(std::move(row));
    }
    out.push_back(std::move(att));
  }
  const Json& split = st["split"]["value"];
  if (!split.is_null()) {
    ExportTable t{"logit-split", "Logit of '" + split["token"]["token"].get<std::string>() + "' after position " +
                                     std::to_string(split["position"].get<int>()) + ", by path",
                  {"path", "order", "contribution"}, {}};
    for (const Json& e : split["terms"]) t.rows.push_back({e["name"], e["order"], e["contribution"]});
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace cs::app
