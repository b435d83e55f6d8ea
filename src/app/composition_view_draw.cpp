// The Composition view's drawing (page build only; logic in composition_view.cpp):
// three heatmaps of Q-, K-, V-composition above the random baseline, and
// [F]'s induction scatter with a choice of the previous-token head.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "app/app.h"
#include "app/composition_view.h"
#include "app/session_ui.h"
#include "app/ui.h"
#include "app/virtual_heads_view.h"
#include "app/widgets.h"
#include "imgui.h"

namespace cs::app {

void CompositionView::draw(Session& s) {
  ui::heading("Composition: how later heads read what earlier heads wrote");
  ui::explain(
      "With two layers, a head can read the output of an earlier head. Q-composition: the earlier head's output "
      "feeds the later head's queries; K-composition: its keys; V-composition: its values. A score is "
      "||W_OV(earlier) x W(later)|| / (||W_OV|| ||W||), between 0 and 1; random matrices of these shapes already "
      "score the baseline, so each cell shows the score minus that baseline (red: more than chance). An induction "
      "head K-composes with a previous-token head.");
  const LoadedModel* lm = session_ui::shown_for_view(s, "see how its heads compose", true);
  if (!lm) return;
  const ModelConfig& c = lm->model.config();
  if (c.n_layers < 2) {
    ImGui::TextWrapped("This model has %d layer(s): composition needs two or more. Load a 2-layer model "
                       "(e.g. the bundled attn-only-2l).",
                       c.n_layers);
    return;
  }
  const int L = c.n_layers, H = c.n_heads;
  session_ui::job_progress(s, kScoresSlot);
  if (scores_.has()) {
    widgets::Faded faded(scores_.freshness(ScoresKey{}, s.generation(), s.jobs()).faded());
    const CompositionScores& r = scores_.value();
    ImGui::Text("random baseline: %.3f (mean score of 32 pairs of Gaussian matrices of these shapes)", r.baseline);
    // Earlier heads (layers 0 .. L-2) x later heads (layers 1 .. L-1).
    const int rows = (L - 1) * H, cols = (L - 1) * H;
    float vmax = 1e-6f;
    for (const Eigen::MatrixXd* M : {&r.Q, &r.K, &r.V})
      for (int i = 0; i < rows; ++i)
        for (int j = 0; j < cols; ++j)
          if (i / H < 1 + j / H) vmax = std::max(vmax, float(std::abs((*M)(i, H + j) - r.baseline)));
    const CompositionKind kinds[] = {CompositionKind::Q, CompositionKind::K, CompositionKind::V};
    const char* what[] = {"queries", "keys", "values"};
    const float row_start = ImGui::GetCursorScreenPos().x, row_end = row_start + ImGui::GetContentRegionAvail().x;
    float last_width = 0.f;
    for (int k = 0; k < 3; ++k) {
      // Beside the previous heatmap when another of its width fits, else below.
      if (k > 0 && ImGui::GetItemRectMax().x + ImGui::GetStyle().ItemSpacing.x + last_width <= row_end)
        ImGui::SameLine();
      ImGui::BeginGroup();
      ImGui::Text("%s-composition (later head's %s)", to_string(kinds[k]), what[k]);
      const Eigen::MatrixXd& M = r.of(kinds[k]);
      const double base = r.baseline;
      widgets::Heatmap h;
      h.rows = rows;
      h.cols = cols;
      h.value = [&M, base, H](int i, int j) {
        const int l1 = i / H, l2 = 1 + j / H;
        return l1 < l2 ? float(M(i, H + j) - base) : 0.f;
      };
      h.row_label = [H](int i) { return head_text(i / H, i % H); };
      h.col_label = [H](int j) { return head_text(1 + j / H, j % H); };
      h.row_title = "earlier head (writes)";
      h.col_title = "later head (reads)";
      h.units = "score - baseline";
      h.vmax = vmax;
      h.tooltip = [&M, &s, base, H, kind = kinds[k]](int i, int j) {
        const int l1 = i / H, h1 = i % H, l2 = 1 + j / H, h2 = j % H;
        if (l1 >= l2) {
          ImGui::Text("%s and %s: no composition (the first head is not earlier)", head_text(l1, h1).c_str(),
                      head_text(l2, h2).c_str());
          return;
        }
        const double v = M(i, H + j);
        ImGui::Text("%s-composition of %s into %s: %.3f", to_string(kind), head_text(l1, h1).c_str(),
                    head_text(l2, h2).c_str(), v);
        ImGui::Text("%.3f above the random baseline %.3f (%.1fx)", v - base, base, base > 0 ? v / base : 0.0);
        session_ui::head_badge_line(s, l1, h1);
        session_ui::head_badge_line(s, l2, h2);
        if (kind == CompositionKind::V) ImGui::TextDisabled("click: explore the virtual head %s -> %s",
                                                            head_text(l1, h1).c_str(), head_text(l2, h2).c_str());
      };
      h.mark = std::string("composition_") + to_string(kinds[k]);
      // A V-composition cell is a virtual head: a click explores it.
      const auto clicked = widgets::heatmap(to_string(kinds[k]), h);
      if (clicked && kinds[k] == CompositionKind::V && clicked->row / H < 1 + clicked->col / H)
        if (VirtualHeadsView* v = app().view<VirtualHeadsView>()) {
          v->select_virtual_head(s, clicked->row / H, clicked->row % H, 1 + clicked->col / H, clicked->col % H);
          app().request_tab(v->id());
        }
      ImGui::EndGroup();
      last_width = ImGui::GetItemRectSize().x;
    }
  }

  ImGui::Separator();
  ui::heading("Induction heads in the weights");
  ui::explain(
      "Each head of a later layer as a point: across, the positivity of its OV eigenvalues (near +1: it copies "
      "the token it attends to); up, the positivity of its K-composition term with the previous-token head (near "
      "+1: it attends to the position after an earlier copy of the current token). Induction heads sit in the top "
      "right corner.");
  // The previous-token head: found by the detector, or chosen.
  std::string current = "found by the detector";
  if (scatter_.has() && scatter_.key().prev_layer < 0)
    current = "found by the detector: " + head_text(scatter_.value().prev_layer, scatter_.value().prev_head);
  if (sel_.prev_layer >= 0) current = head_text(sel_.prev_layer, sel_.prev_head);
  ImGui::SetNextItemWidth(ImGui::GetFontSize() * 16.f);
  if (ImGui::BeginCombo("previous-token head", current.c_str())) {
    if (ImGui::Selectable("find it with the detector", sel_.prev_layer < 0)) set_previous_head(s, -1, 0);
    for (int l = 0; l + 1 < L; ++l)
      for (int h = 0; h < H; ++h)
        if (ImGui::Selectable(("head " + head_text(l, h)).c_str(), sel_.prev_layer == l && sel_.prev_head == h))
          set_previous_head(s, l, h);
    ImGui::EndCombo();
  }
  ui::help_marker("The detector runs the model on 10 sequences of random tokens repeated 4 times and picks the "
                  "head (before the last layer) that attends most to the previous token.");
  ImGui::SameLine();
  bool norm = sel_.embed_norm;
  if (ImGui::Checkbox("LayerNorm on W_E", &norm)) set_embed_norm(s, norm);
  session_ui::job_progress(s, kScatterSlot);
  if (!scatter_.has()) return;
  widgets::Faded faded(scatter_.freshness(sel_, s.generation(), s.jobs()).faded());
  const InductionScatter& r = scatter_.value();
  widgets::Scatter sc;
  sc.x_title = "OV positivity (copying)";
  sc.y_title = "K-term positivity with " + head_text(r.prev_layer, r.prev_head);
  for (const InductionScatterPoint& p : r.points) {
    widgets::ScatterPoint q;
    q.x = std::isfinite(p.ov_positivity) ? float(p.ov_positivity) : 0.f;
    q.y = float(p.k_term_positivity);
    q.label = head_text(p.layer, p.head);
    q.color = std::clamp(std::min(q.x, q.y), -1.f, 1.f);
    sc.points.push_back(q);
  }
  sc.tooltip = [&r, &s](size_t i) {
    const InductionScatterPoint& p = r.points[i];
    const std::string badges = session_ui::head_badge_text(s, p.layer, p.head);
    ImGui::Text("head %s%s%s", head_text(p.layer, p.head).c_str(), badges.empty() ? "" : ": ", badges.c_str());
    ImGui::Text("OV eigenvalue positivity %.3f", p.ov_positivity);
    ImGui::Text("K-composition term with %s: positivity %.3f", head_text(r.prev_layer, r.prev_head).c_str(),
                p.k_term_positivity);
  };
  sc.mark = "composition_scatter";
  widgets::scatter_plot("##scatter", sc);
  // The same numbers as a table (points near (1, 1) overlap), highest K-term first.
  ImGui::SameLine();
  std::vector<size_t> order(r.points.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&r](size_t a, size_t b) {
    return r.points[a].k_term_positivity > r.points[b].k_term_positivity;
  });
  if (ImGui::BeginTable("##scatter-table", 3,
                        ImGuiTableFlags_Borders | ImGuiTableFlags_RowBg | ImGuiTableFlags_SizingFixedFit |
                            ImGuiTableFlags_ScrollY,
                        ImVec2(0.f, ImGui::GetFontSize() * 20.f))) {
    ImGui::TableSetupScrollFreeze(0, 1);
    ImGui::TableSetupColumn("head");
    ImGui::TableSetupColumn("OV positivity");
    ImGui::TableSetupColumn("K-term positivity");
    ImGui::TableHeadersRow();
    for (size_t i : order) {
      const InductionScatterPoint& p = r.points[i];
      ImGui::TableNextRow();
      ImGui::TableSetColumnIndex(0);
      ImGui::TextUnformatted(head_text(p.layer, p.head).c_str());
      session_ui::head_badges(s, p.layer, p.head, "composition");
      ImGui::TableSetColumnIndex(1);
      ImGui::Text("%+.3f", p.ov_positivity);
      ImGui::TableSetColumnIndex(2);
      ImGui::Text("%+.3f", p.k_term_positivity);
    }
    ImGui::EndTable();
  }
}

}  // namespace cs::app
