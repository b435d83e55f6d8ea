// The Skip-trigrams view (view.h): "[source] ... [destination] -> [out]" for
// one head or every head, ranked by the combined score of core/skip_trigrams.h
// (QK entry times OV entry, each over its circuit's RMS; docs/one-layer.md),
// filterable by any of the three tokens, sortable by any column; and for two
// chosen trigrams that share a source, the "bug" cross terms the
// factorisation forces.
#pragma once
#include <optional>
#include <vector>

#include "app/result.h"
#include "app/view.h"
#include "app/widgets.h"
#include "core/skip_trigrams.h"

namespace cs::app {

struct SkipTrigramsSelection {
  int layer = 0, head = 0;
  bool all_heads = false;   // every head's table merged by score
  bool embed_norm = true;
  int top_n = 50;
  int per_source_k = SkipTrigramQuery{}.per_source_k;
  int source = -1, destination = -1, out = -1;  // filters (-1: any)
  int bug_a = -1, bug_b = -1;  // two rows of the table (indices, by score) for the bug's cross terms

  Json to_json() const;
  static SkipTrigramsSelection from_json(const Json& j);
  bool operator==(const SkipTrigramsSelection&) const = default;
};

// A trigram with the head it belongs to.
struct HeadTrigram {
  int layer = 0, head = 0;
  SkipTrigram t;
  double qk_rms = 0, ov_rms = 0;  // of its head's circuits (for the bug's cross terms)
};

// The table's input: everything in the selection but the bug pair.
struct SkipTrigramsKey {
  int layer = -1, head = -1;
  bool all_heads = false, embed_norm = true;
  int top_n = 0, per_source_k = 0, source = -1, destination = -1, out = -1;
  bool operator==(const SkipTrigramsKey&) const = default;
};

class SkipTrigramsView final : public SelectionView<SkipTrigramsSelection> {
 public:
  static constexpr const char* kTableSlot = "skip_trigrams.table";
  static constexpr const char* kBugSlot = "skip_trigrams.bug";  // computed at once: never runs

  const char* id() const override { return "skip_trigrams"; }
  const char* title() const override { return "Skip-trigrams"; }
  void on_model(Session& s, ModelChange change) override;
  // {"table": {"key","freshness","stale","pending","weights","value": [{"layer","head","source":{id,token},
  //   "destination","out","qk","ov","score"}]}, "bug": {"key": [a, b]|null, "value": [two entries]|null,
  //   "note"}}
  // "skip-trigrams" (the table as drawn: head, source, destination, out, score, qk, ov).
  std::vector<ExportTable> tables(const Session& s) const override;
  Json state_json(const Session& s) const override;
#ifdef CS_APP_DRAW
  void draw(Session& s) override;  // skip_trigrams_view_draw.cpp
#endif

  void set_head(Session& s, int layer, int head, bool all_heads);
  void set_embed_norm(Session& s, bool on);
  void set_top_n(Session& s, int n);
  void set_filters(Session& s, int source, int destination, int out);
  void choose_bug_pair(Session& s, int a, int b);

  SkipTrigramsKey table_key() const;
  const Result<SkipTrigramsKey, std::vector<HeadTrigram>>& table() const { return table_; }
  // The cross terms of the chosen pair (nullopt when none is chosen or they do
  // not share a source; bug_note() says why).
  const std::optional<SkipTrigramBug>& bug() const { return bug_; }
  const std::string& bug_note() const { return bug_note_; }

  // Widget state (page only; plain data).
  widgets::TokenPickerState source_picker, destination_picker, out_picker;
  int sort_column = -1;  // -1: by score (the table's order)
  bool sort_ascending = false;

 private:
  void apply_selection(Session& s) override;
  void clamp_selection(const Session& s);
  void start(Session& s);
  void start_deferred(Session& s) override { start(s); }
  void compute_bug(Session& s);
  void forget_bug();

  Result<SkipTrigramsKey, std::vector<HeadTrigram>> table_{kTableSlot};
  std::optional<SkipTrigramBug> bug_;
  int bug_layer_ = 0, bug_head_ = 0, bug_rows_[2] = {-1, -1};  // what bug_ belongs to
  std::string bug_note_;
  bool weights_raw_ = false;
};

}  // namespace cs::app
