// The direct path W_E -> W_U, the zero-layer "bigram" table, as a view
// (view.h). Row = current token, column = next token (TransformerLens, row
// vectors): logits[current, :] = ln_final(W_E[current]) @ W_U + b_U   [d_vocab_out]
// (core/direct_path.h). Top-k next tokens of a current token, the reverse
// lookup (which current tokens most raise a next token), and a heatmap of the
// table restricted to chosen tokens.
#pragma once
#include <string>
#include <vector>

#include "app/result.h"
#include "app/view.h"
#include "app/widgets.h"
#include "core/direct_path.h"

namespace cs::app {

// The bigram view's selection (serialisable: URL state, exports, tests).
struct BigramSelection {
  int source = 0;     // current token (row of the table)
  int k = 10;         // top-k next tokens
  int next = 0;       // reverse lookup: next token (column)
  int k_sources = 10; // top-k current tokens of the reverse lookup
  std::vector<int> block_tokens;  // heatmap rows and columns (at most kMaxBlockTokens)

  Json to_json() const;  // {"source","k","next","k_sources","block_tokens"}
  // Missing fields keep their defaults; throws cs::Error naming a bad field.
  static BigramSelection from_json(const Json& j);
  bool operator==(const BigramSelection&) const = default;
};

// A ranked list's input: the token and k it was computed for.
struct TokenK {
  int token = -1;
  int k = 0;
  bool operator==(const TokenK&) const = default;
};

class BigramView final : public SelectionView<BigramSelection> {
 public:
  static constexpr const char* kTopNextSlot = "bigram.next";
  static constexpr const char* kTopSourcesSlot = "bigram.sources";
  static constexpr const char* kBlockSlot = "bigram.block";  // computed at once (at most 64 x 64): never runs
  static constexpr size_t kMaxBlockTokens = 64;  // a heatmap beyond this is unreadable

  BigramView();
  const char* id() const override { return "bigram"; }
  const char* title() const override { return "Direct path (bigrams)"; }
  void on_model(Session& s, ModelChange change) override;
  // {"top_next","top_sources": {"key":{"token","k"}|null,"freshness","stale","pending","value":[ranked]},
  //  "block": {"key":[ids]|null,"freshness","stale","pending","value":[[logit]]}}
  Json state_json(const Session& s) const override;
  // "next-tokens", "current-tokens" (the reverse lookup), "heatmap" (block of the table).
  std::vector<ExportTable> tables(const Session& s) const override;
  std::optional<Json> computed_default() const override { return computed_default_; }
  // "bigram": selection fields, top_next_source (-1: none), top_next, top_next_pending,
  // top_sources_next, top_sources, top_sources_pending (as before the views had a registry).
  void legacy_state_json(const Session& s, Json& root) const override;
#ifdef CS_APP_DRAW
  void draw(Session& s) override;  // bigram_view_draw.cpp
#endif

  // User intents (the widgets and the bridge's cs_select_token & co.); each
  // clamps to the shown model and restarts what it changes.
  void select_source(Session& s, int id);
  void set_top_k(Session& s, int k);
  void select_next(Session& s, int id);
  void set_top_k_sources(Session& s, int k);
  void add_block_tokens(Session& s, const std::vector<int>& ids);
  void remove_block_token(Session& s, size_t index);
  void clear_block_tokens(Session& s);

  using Ranking = Result<TokenK, std::vector<Ranked>>;
  const Ranking& top_next() const { return top_next_; }
  const Ranking& top_sources() const { return top_sources_; }
  const Result<std::vector<int>, RowMat>& block() const { return block_; }
  TokenK wanted_top_next() const { return {sel_.source, sel_.k}; }
  TokenK wanted_top_sources() const { return {sel_.next, sel_.k_sources}; }

 private:
  void apply_selection(Session& s) override;
  void clamp_selection(const Session& s);
  void start_top_next(Session& s);
  void start_top_sources(Session& s);
  void compute_block(Session& s);

  Ranking top_next_{kTopNextSlot};
  Ranking top_sources_{kTopSourcesSlot};
  Result<std::vector<int>, RowMat> block_{kBlockSlot};
  bool follow_top_next_ = false;  // a new model's reverse lookup starts at its top next token
  std::optional<Json> computed_default_;  // the selection once it followed the top next token by itself

  // Widget state (the page's draw(); plain data, no ImGui types).
  struct Ui {
    widgets::TokenPickerState source_picker, next_picker;
    char phrase[256] = "";  // the heatmap's "add a phrase" field
  } ui_;
};

}  // namespace cs::app
