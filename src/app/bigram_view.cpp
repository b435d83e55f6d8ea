// The bigram view's selection, jobs and results (bigram_view.h); its drawing
// is in bigram_view_draw.cpp (page build only).
#include "app/bigram_view.h"

#include <algorithm>

#include "core/error.h"

namespace cs::app {

CS_REGISTER_VIEW(BigramView, 0);

namespace {

}  // namespace

// ---- selection ------------------------------------------------------------------

Json BigramSelection::to_json() const {
  return Json{{"source", source}, {"k", k}, {"next", next}, {"k_sources", k_sources}, {"block_tokens", block_tokens}};
}

BigramSelection BigramSelection::from_json(const Json& j) {
  if (!j.is_object()) throw Error("bigram selection: expected an object");
  BigramSelection s;
  s.source = json_int(j, "bigram", "source", s.source);
  s.k = json_int(j, "bigram", "k", s.k);
  s.next = json_int(j, "bigram", "next", s.next);
  s.k_sources = json_int(j, "bigram", "k_sources", s.k_sources);
  if (j.contains("block_tokens")) {
    const Json& b = j.at("block_tokens");
    if (!b.is_array()) throw Error("bigram selection: \"block_tokens\" must be an array of token ids");
    for (const auto& t : b) {
      if (!t.is_number_integer()) throw Error("bigram selection: \"block_tokens\" must be an array of token ids");
      s.block_tokens.push_back(int(t.get<int64_t>()));
    }
  }
  return s;
}

// ---- the view -------------------------------------------------------------------

BigramView::BigramView() = default;

void BigramView::clamp_selection(const Session& s) {
  const int n = s.vocab(), n_out = s.vocab_out();
  sel_.source = clamp_token(sel_.source, n);
  sel_.next = clamp_token(sel_.next, n_out);
  sel_.k = std::clamp(sel_.k, 1, std::max(1, n_out));
  sel_.k_sources = std::clamp(sel_.k_sources, 1, std::max(1, n));
  const int n_block = std::min(n, n_out);
  std::vector<int> block;
  for (int t : sel_.block_tokens)
    if (t >= 0 && t < n_block && std::find(block.begin(), block.end(), t) == block.end() &&
        block.size() < kMaxBlockTokens)
      block.push_back(t);
  sel_.block_tokens = std::move(block);
}

void BigramView::apply_selection(Session& s) {
  follow_top_next_ = false;
  clamp_selection(s);
  start_top_next(s);
  start_top_sources(s);
  compute_block(s);
}

void BigramView::on_model(Session& s, ModelChange change) {
  // Results of the old model are never shown on the new one (its token ids may mean other tokens).
  top_next_.clear();
  top_sources_.clear();
  block_.clear();
  s.jobs().cancel(kTopNextSlot);
  s.jobs().cancel(kTopSourcesSlot);
  if (change == ModelChange::Weights) {
    // The same model with other weights: the selection stays.
    clamp_selection(s);
    start_top_next(s);
    start_top_sources(s);
    compute_block(s);
    return;
  }
  // A new model: selections start over (the chosen k stay).
  computed_default_.reset();
  const LoadedModel* m = s.shown();
  BigramSelection fresh;
  fresh.k = sel_.k;
  fresh.k_sources = sel_.k_sources;
  sel_ = fresh;
  follow_top_next_ = false;
  if (!m) return;
  std::vector<int> phrase;
  sel_.source = s.familiar_token();  // a start students recognise, and the tokens of a short phrase
  if (m->tokenizer) {
    try {
      phrase = m->tokenizer->encode("the cat sat on the mat.");
    } catch (const Error&) {
    }
  } else {
    for (int i = 0; i < std::min(std::min(s.vocab(), s.vocab_out()), 8); ++i) phrase.push_back(i);
  }
  clamp_selection(s);
  // The reverse lookup starts once the top next token is known (start_top_next's job).
  follow_top_next_ = true;
  start_top_next(s);
  add_block_tokens(s, phrase);
}

// (Re)starts the top-k next tokens of the selected source; a job still running
// for an earlier selection is dropped.
void BigramView::start_top_next(Session& s) {
  const auto m = s.shown_shared();
  if (!m) {
    s.jobs().cancel(kTopNextSlot);
    return;
  }
  const TokenK key = wanted_top_next();
  const uint64_t generation = s.generation();
  JobOptions o;
  o.label = "next tokens";
  o.keep = m;
  o.failed = job_failed(s);
  s.jobs().start<BigramTopNext>(
      kTopNextSlot, std::make_unique<BigramTopNext>(m->model, key.token, key.k),
      [this, &s, key, generation](BigramTopNext& q) {
        top_next_.set(key, generation, q.result());
        if (follow_top_next_) {
          follow_top_next_ = false;
          if (!q.result().empty()) select_next(s, q.result().front().id);
          computed_default_ = sel_.to_json();  // what a link to this model leaves out
        }
      },
      std::move(o));
}

// (Re)starts the reverse lookup of the selected next token: a pass over all of
// W_E and k rows times W_U (50-250 ms in wasm for the toy models), a slice per frame.
void BigramView::start_top_sources(Session& s) {
  const auto m = s.shown_shared();
  if (!m || follow_top_next_) {
    s.jobs().cancel(kTopSourcesSlot);
    return;
  }
  const TokenK key = wanted_top_sources();
  const uint64_t generation = s.generation();
  JobOptions o;
  o.label = "reverse lookup";
  o.keep = m;
  o.priority = 1;
  o.failed = job_failed(s);
  s.jobs().start<BigramTopSources>(
      kTopSourcesSlot, std::make_unique<BigramTopSources>(m->model, key.token, key.k, m->embed_stats),
      [this, key, generation](BigramTopSources& q) { top_sources_.set(key, generation, q.result()); },
      std::move(o));
}

// At most 64 x 64 entries: computed at once, no job.
void BigramView::compute_block(Session& s) {
  const LoadedModel* m = s.shown();
  if (!m || sel_.block_tokens.empty()) {
    block_.clear();
    return;
  }
  block_.set(sel_.block_tokens, s.generation(), bigram_block(m->model, sel_.block_tokens, sel_.block_tokens));
}

void BigramView::select_source(Session& s, int id) {
  sel_.source = clamp_token(id, s.vocab());
  start_top_next(s);
}

void BigramView::set_top_k(Session& s, int k) {
  sel_.k = std::clamp(k, 1, std::max(1, s.vocab_out()));
  start_top_next(s);
}

void BigramView::select_next(Session& s, int id) {
  follow_top_next_ = false;
  sel_.next = clamp_token(id, s.vocab_out());
  start_top_sources(s);
}

void BigramView::set_top_k_sources(Session& s, int k) {
  sel_.k_sources = std::clamp(k, 1, std::max(1, s.vocab()));
  start_top_sources(s);
}

void BigramView::add_block_tokens(Session& s, const std::vector<int>& ids) {
  const int n = std::min(s.vocab(), s.vocab_out());
  for (int id : ids) {
    if (id < 0 || id >= n) continue;
    if (std::find(sel_.block_tokens.begin(), sel_.block_tokens.end(), id) != sel_.block_tokens.end()) continue;
    if (sel_.block_tokens.size() >= kMaxBlockTokens) break;
    sel_.block_tokens.push_back(id);
  }
  compute_block(s);
}

void BigramView::remove_block_token(Session& s, size_t index) {
  if (index >= sel_.block_tokens.size()) return;
  sel_.block_tokens.erase(sel_.block_tokens.begin() + long(index));
  compute_block(s);
}

void BigramView::clear_block_tokens(Session& s) {
  sel_.block_tokens.clear();
  compute_block(s);
}

// ---- state for tests ----------------------------------------------------------

Json BigramView::state_json(const Session& s) const {
  const TokenDisplay display = s.token_display_fn();
  auto ranking = [&](const Ranking& r, const TokenK& wanted) {
    Json j = freshness_json(r.freshness(wanted, s.generation(), s.jobs()));
    j["key"] = r.has() ? Json{{"token", r.key().token}, {"k", r.key().k}} : Json(nullptr);
    j["value"] = ranked_json(r.has() ? r.value() : std::vector<Ranked>{}, display);
    return j;
  };
  Json j;
  j["top_next"] = ranking(top_next_, wanted_top_next());
  j["top_sources"] = ranking(top_sources_, wanted_top_sources());
  Json b = freshness_json(block_.freshness(sel_.block_tokens, s.generation(), s.jobs()));
  b["key"] = block_.has() ? Json(block_.key()) : Json(nullptr);
  b["value"] = block_.has() ? matrix_json(block_.value()) : Json::array();
  j["block"] = b;
  return j;
}

std::vector<ExportTable> BigramView::tables(const Session& s) const {
  const TokenDisplay display = s.token_display_fn();
  std::vector<ExportTable> out;
  if (top_next_.has())
    out.push_back(ranked_table("next-tokens", "Most likely next tokens after '" + display(top_next_.key().token) + "'",
                               top_next_.value(), display));
  if (top_sources_.has())
    out.push_back(ranked_table("current-tokens",
                               "Current tokens that most raise the logit of '" + display(top_sources_.key().token) + "'",
                               top_sources_.value(), display));
  if (block_.has()) {
    // Row = current token, column = next token, as drawn.
    const std::vector<int>& ids = block_.key();
    ExportTable t{"heatmap", "Direct-path logits: row = current token, column = next token", {"current token"}, {}};
    for (int id : ids) t.columns.push_back(display(id));
    for (size_t r = 0; r < ids.size(); ++r) {
      std::vector<Json> row{Json(display(ids[r]))};
      for (size_t c = 0; c < ids.size(); ++c) row.push_back(Json(block_.value()(Eigen::Index(r), Eigen::Index(c))));
      t.rows.push_back(std::move(row));
    }
    out.push_back(std::move(t));
  }
  return out;
}

void BigramView::legacy_state_json(const Session& s, Json& root) const {
  const TokenDisplay display = s.token_display_fn();
  Json b = sel_.to_json();
  // The results on screen and the selection each belongs to (-1: none yet);
  // pending while a job computes newer ones.
  b["top_next_source"] = top_next_.has() ? top_next_.key().token : -1;
  b["top_next"] = ranked_json(top_next_.has() ? top_next_.value() : std::vector<Ranked>{}, display);
  b["top_next_pending"] = s.jobs().running(kTopNextSlot);
  b["top_sources_next"] = top_sources_.has() ? top_sources_.key().token : -1;
  b["top_sources"] = ranked_json(top_sources_.has() ? top_sources_.value() : std::vector<Ranked>{}, display);
  b["top_sources_pending"] = s.jobs().running(kTopSourcesSlot);
  root["bigram"] = b;
}

}  // namespace cs::app
