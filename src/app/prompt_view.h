// The Prompt view (view.h): the model on the user's own text. The text's
// tokens; per layer and head the attention pattern (hover a token to see
// what it attends to, click to lock that position, click again to unlock);
// the top next tokens at the locked position (else the last); the chosen
// next token's logit split by path (direct, each head, each virtual head:
// core/paths.h, docs/two-layer.md "Paths"); heads ticked for
// pattern-preserving ablation (docs/two-layer.md "Ablation") with the new
// predictions and loss beside the full model's.
//
// Three results, each its own job so a change recomputes only what depends
// on it:
//   run      the text's forward pass (patterns, residual streams, a
//            LogitSummary: top tokens and losses at every position)
//   ablated  the pass again with the run's patterns and the ticked heads'
//            outputs zeroed (LogitSummary)
//   split    the path expansion at the chosen position, for the chosen token
// The numbers are those of `circuitscope run` (with --ablate) and
// `circuitscope paths` on the same text.
#pragma once
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "app/result.h"
#include "app/view.h"
#include "app/widgets.h"
#include "core/forward.h"
#include "core/paths.h"

namespace cs::app {

struct PromptSelection {
  std::string text;
  int position = -1;  // the locked position; -1: none (predictions at the last token)
  int layer = 0, head = 0;  // the head whose attention is drawn
  int token = -1;     // the next token whose logit is split; -1: the top prediction
  std::vector<HeadId> ablate;  // heads ablated (pattern-preserving), sorted, no repeats

  PromptSelection();  // the default text
  // {"text", "position": n | null, "head": "L.H", "token": id | null, "ablate": ["L.H", ...]}
  Json to_json() const;
  static PromptSelection from_json(const Json& j);  // cs::Error names a bad field
  bool operator==(const PromptSelection&) const = default;
};

// The text's forward pass: what the run job computes.
struct PromptRun {
  std::vector<int> ids;      // BOS (when the tokenizer has one), then the text's tokens, cut at n_ctx
  bool truncated = false;    // the text had more tokens than n_ctx
  ForwardCache cache;        // resid and pattern (head_out dropped)
  LogitSummary summary;      // top tokens, log-normalizers and losses at every position
};

struct PromptSplit {
  int position = 0, token = 0;
  float logit = 0.f;                // the token's logit at the position (the terms add up to it)
  std::vector<PathTerm> terms;
  std::vector<float> contribution;  // [terms]
};

class PromptView final : public SelectionView<PromptSelection> {
 public:
  static constexpr const char* kRunSlot = "prompt.run";
  static constexpr const char* kAblatedSlot = "prompt.ablated";
  static constexpr const char* kSplitSlot = "prompt.split";
  static constexpr int kTopK = 10;
  // The pattern heatmap draws (and the state reports) at most this many
  // positions, the ones ending at the predicted position: a 1024 x 1024
  // heatmap is a million cells a frame.
  static constexpr int kPatternWindow = 96;
  // The first position of that window.
  int pattern_first() const { return std::max(0, position() - kPatternWindow + 1); }

  const char* id() const override { return "prompt"; }
  const char* title() const override { return "Prompt"; }
  void on_model(Session& s, ModelChange change) override;
  // {"run": {freshness, "value": {"text","ids","tokens","truncated","loss","losses","position","locked",
  //          "focus","head","pattern" (rows and columns pattern_first.. position), "pattern_first",
  //          "focus_attention","top": [{"id","token","logit","prob"}]} | null},
  //  "ablated": {freshness, "value": {"heads","loss","losses","top"} | null},
  //  "split": {freshness, "value": {"position","token","logit","terms": [{"name","order","contribution"}]} | null}}
  // "tokens" (each token and the loss of predicting the next), "predictions"
  // (at the position shown), "attention" (the chosen head's pattern as drawn),
  // "logit-split" (the chosen token's logit by path): from state_json's values.
  std::vector<ExportTable> tables(const Session& s) const override;
  Json state_json(const Session& s) const override;
#ifdef CS_APP_DRAW
  void draw(Session& s) override;  // prompt_view_draw.cpp
#endif

  // ---- what the user does (the draw code and the tests call these) ----
  void set_text(Session& s, const std::string& text);
  // A click on token `position`: locks it, or unlocks it when it was locked.
  void click_token(Session& s, int position);
  void hover_token(int position) { hover_ = position; }  // -1: none
  void set_head(int layer, int head);
  void set_token(Session& s, int token);  // -1: the top prediction
  void toggle_ablate(Session& s, HeadId h);
  void clear_ablate(Session& s);

  // ---- what is shown ----
  // The position predictions and the split are for: the locked one, else the last.
  int position() const;
  // The position whose attention the token strip shows: hovered, else locked (-1: none).
  int focus() const { return hover_ >= 0 ? hover_ : sel_.position; }
  // The token whose logit is split: the chosen one, else the top prediction (-1 before a run).
  int split_token() const;

  using Run = Result<std::string, std::shared_ptr<const PromptRun>>;
  struct AblatedKey {
    std::string text;
    std::vector<HeadId> heads;
    bool operator==(const AblatedKey&) const = default;
  };
  using Ablated = Result<AblatedKey, LogitSummary>;
  struct SplitKey {
    std::string text;
    int position = 0, token = 0;
    bool operator==(const SplitKey&) const = default;
  };
  using Split = Result<SplitKey, PromptSplit>;
  const Run& run() const { return run_; }
  const Ablated& ablated() const { return ablated_; }
  const Split& split() const { return split_; }

 private:
  void apply_selection(Session& s) override;
  void start_deferred(Session& s) override { start(s); }
  void start(Session& s);            // the run, then (when it is held) the others
  void start_ablated(Session& s);
  void start_split(Session& s);
  const PromptRun* held_run(const Session& s) const;  // the run of the current text and model, if held

  Run run_{kRunSlot};
  Ablated ablated_{kAblatedSlot};
  Split split_{kSplitSlot};
  int hover_ = -1;
  widgets::TextBoxState text_box_;
  TextAcrossModels text_across_;  // ids in place of the text for a model without a tokenizer
};

}  // namespace cs::app
