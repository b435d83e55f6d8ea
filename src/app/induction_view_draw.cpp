// The Induction view's drawing (page build only; logic in induction_view.cpp):
// the experiment's parameters, the loss at each position, the heads' scores
// as layer x head heatmaps and one head's attention on the first example.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "app/induction_view.h"
#include "app/session_ui.h"
#include "app/ui.h"
#include "app/widgets.h"
#include "imgui.h"

namespace cs::app {

namespace {

// A layer x head heatmap of scores in [0, 1].
void scores_heatmap(const Session& s, const char* id, const RowMat& m, const char* units, const char* mark,
                    std::optional<widgets::HeatmapCell>* clicked) {
  widgets::Heatmap h;
  h.rows = int(m.rows());
  h.cols = int(m.cols());
  h.value = [&m](int r, int c) { return std::isfinite(m(r, c)) ? m(r, c) : 0.f; };
  h.row_label = [](int l) { return "layer " + std::to_string(l); };
  h.col_label = [](int c) { return std::to_string(c); };
  h.row_title = "layer";
  h.col_title = "head";
  h.units = units;
  h.vmax = 1.f;
  h.tooltip = [&m, &s, units](int r, int c) {
    ImGui::Text("head %d.%d: %s %.3f", r, c, units, double(m(r, c)));
    const std::string b = session_ui::head_badge_text(s, r, c);
    if (!b.empty()) ImGui::TextDisabled("badges: %s", b.c_str());
  };
  h.click_hint = "click: show this head's attention below";
  h.mark = mark;
  *clicked = widgets::heatmap(id, h);
}

}  // namespace

void InductionView::draw(Session& s) {
  ui::heading("Induction: predicting a repeated sequence from its first copy");
  ui::explain(
      "The model reads random tokens repeated a few times ([I]'s experiment). Nothing predicts the first copy, so "
      "the loss there stays high; a model with induction heads predicts every repeat from the earlier copy: it "
      "attends to the token that followed the current token last time and copies it. Prefix matching: how much a "
      "head attends to that token. Previous token: how much it attends to the token just before (the previous-token "
      "head that induction heads read through K-composition).");
  const LoadedModel* lm = session_ui::shown_for_view(s, "run the experiment", true);
  if (!lm) return;
  int p[4] = {sel_.tokens, sel_.repeats, sel_.examples, sel_.seed};
  ImGui::SetNextItemWidth(ImGui::GetFontSize() * 22.f);
  ImGui::InputInt4("tokens, repeats, examples, seed", p);
  ImGui::SameLine();
  if (ImGui::Button("Run")) {
    try {
      set_experiment(s, p[0], p[1], p[2], p[3]);
    } catch (const std::exception& e) {
      s.set_error(e.what());
    }
  }
  ui::help_marker("Each example: the BOS (when the tokenizer has one), then `tokens` random tokens, repeated "
                  "`repeats` times. The same parameters give the same sequences as `circuitscope induction`.");
  session_ui::job_progress(s, kSlot);
  if (!experiment_.has()) return;
  widgets::Faded faded(experiment_.freshness(key(), s.generation(), s.jobs()).faded());
  const InductionExperiment& r = experiment_.value();
  ImGui::Text("mean loss on the first copy %.3f nats, on the repeats %.3f nats (uniform guessing: %.3f)",
              r.loss.first, r.loss.repeats, std::log(double(lm->model.config().vocab_out())));

  // Loss at each position, averaged over the examples.
  std::vector<float> losses(r.loss_by_position.begin(), r.loss_by_position.end());
  float top = 0.f;
  for (float v : losses) top = std::max(top, v);
  ImGui::Text("loss at each position (nats, mean of %d examples); the first copy ends at position %d",
              r.examples, (r.bos >= 0 ? 1 : 0) + r.tokens - 1);
  const ImVec2 plot_min = ImGui::GetCursorScreenPos();
  const float plot_w = std::min(ImGui::GetContentRegionAvail().x, ImGui::GetFontSize() * 50.f);
  const float plot_h = ImGui::GetFontSize() * 6.f;
  ImGui::PlotLines("##loss", losses.data(), int(losses.size()), 0, nullptr, 0.f, top * 1.05f, ImVec2(plot_w, plot_h));
  ui::mark_item("induction_loss");
  // The end of the first copy as a vertical line.
  if (!losses.empty()) {
    const float x = plot_min.x + plot_w * float((r.bos >= 0 ? 1 : 0) + r.tokens - 1) / float(losses.size());
    ImGui::GetWindowDrawList()->AddLine(ImVec2(x, plot_min.y), ImVec2(x, plot_min.y + plot_h),
                                        IM_COL32(230, 160, 60, 220), 2.f);
  }

  std::optional<widgets::HeatmapCell> a, b;
  ImGui::BeginGroup();
  ImGui::TextUnformatted("prefix matching (induction)");
  scores_heatmap(s, "pm", r.prefix_matching, "prefix matching", "induction_prefix_matching", &a);
  ImGui::EndGroup();
  ImGui::SameLine();
  ImGui::BeginGroup();
  ImGui::TextUnformatted("previous token");
  scores_heatmap(s, "prev", r.previous_token, "previous-token score", "induction_previous_token", &b);
  ImGui::EndGroup();
  std::optional<widgets::HeatmapCell> cp;
  if (r.copying.allFinite()) {
    // Beside the others when it fits (as wide as the last), else below.
    const float group_w = ImGui::GetItemRectSize().x;
    if (ImGui::GetItemRectMax().x + ImGui::GetStyle().ItemSpacing.x + group_w <
        ImGui::GetWindowPos().x + ImGui::GetWindowContentRegionMax().x)
      ImGui::SameLine();
    ImGui::BeginGroup();
    ImGui::TextUnformatted("copying");
    ImGui::SameLine();
    ui::help_marker("How much the head's OV circuit raises the logit of the token it attends to, against the other "
                    "tokens of the sequence: +1 only that token, -1 no preference (docs/two-layer.md).");
    scores_heatmap(s, "copy", r.copying, "copying score", "induction_copying", &cp);
    ImGui::EndGroup();
  }
  if (a) set_head(a->row, a->col);
  if (b) set_head(b->row, b->col);
  if (cp) set_head(cp->row, cp->col);

  // The chosen head's attention on the first example.
  const HeadId h = shown_head();
  const size_t idx = size_t(h.layer) * size_t(r.prefix_matching.cols()) + size_t(h.head);
  if (idx >= r.patterns.size() || r.sequences.empty()) return;
  ImGui::Text("attention of head %s on the first example%s", head_text(h.layer, h.head).c_str(),
              sel_.layer < 0 ? " (the best prefix-matching head; click a cell above for another)" : "");
  session_ui::head_badges(s, h.layer, h.head, "induction");
  const RowMat& A = r.patterns[idx];
  const std::vector<int>& seq = r.sequences[0];
  const widgets::TokenText tt = session_ui::token_text(s);
  widgets::Heatmap hm;
  hm.rows = int(A.rows());
  hm.cols = int(A.cols());
  hm.value = [&A](int i, int j) { return A(i, j); };
  hm.row_label = [&seq, &tt](int i) { return tt.display(seq[size_t(i)]); };
  hm.col_label = [&seq, &tt](int j) { return tt.display(seq[size_t(j)]); };
  hm.row_title = "query position (destination)";
  hm.col_title = "key position (source)";
  hm.units = "attention";
  hm.vmax = 1.f;
  hm.mark = "induction_pattern";
  widgets::heatmap("##pattern", hm);
}

}  // namespace cs::app
