// The Heads view's drawing (page build only; logic in heads_view.cpp): every
// head in a layer x head grid with its copying score, positional share,
// attention to the current / previous token and a small plot of its OV
// eigenvalues. Clicking a head opens it in the Head view.
#include <cmath>
#include <string>

#include "app/app.h"
#include "app/colormap.h"
#include "app/head_view.h"
#include "app/heads_view.h"
#include "app/session_ui.h"
#include "app/ui.h"
#include "imgui.h"

namespace cs::app {

namespace {

std::string score_text(double x, const char* format = "%+.2f") { return std::isnan(x) ? "n/a" : ui::fmt(format, x); }

}  // namespace

void HeadsView::draw(Session& s) {
  ui::heading("Heads: what each attention head does, read from its weights");
  ui::explain(
      "Each cell is one head (layer.head). Copying: the eigenvalues of the head's OV circuit (what attending to a "
      "token does to the logits). Mostly positive real parts (red dots, score near +1) mean that attending to a "
      "token raises that same token's logit: the head copies. Diagonal: how often a token's own logit is among "
      "the top 1 / top 5 outputs when the head attends to it. Positional: the share of the head's attention "
      "scores that comes from positions rather than tokens; prev / current: its mean attention to the previous "
      "and the current token on random tokens. Click a head to open it.");
  const LoadedModel* lm = session_ui::shown_for_view(s, "see its heads", true);
  if (!lm) return;
  const ModelConfig& c = lm->model.config();
  bool norm = sel_.embed_norm;
  if (ImGui::Checkbox("LayerNorm on W_E (as the paper)", &norm)) set_embed_norm(s, norm);
  ui::help_marker("The circuits read E = each row of W_E through the head's LayerNorm, as the paper does for "
                  "one-layer models. Untick to use W_E as it is.");
  ImGui::SameLine();
  bool diag = sel_.diagonal;
  if (ImGui::Checkbox("Diagonal test", &diag)) set_diagonal(s, diag);
  ui::help_marker("A full scan of every head's vocab x vocab OV circuit: exact, but the slowest part on a large "
                  "vocabulary (off by default there: it can take minutes).");
  ImGui::Separator();
  session_ui::job_progress(s, kSummarySlot);
  if (!summary_.has()) return;
  widgets::Faded faded(summary_.freshness(sel_, s.generation(), s.jobs()).faded());

  const float fs = ImGui::GetFontSize();
  const int H = c.n_heads;
  const float cell_w = std::max(fs * 9.f, (ImGui::GetContentRegionAvail().x - fs * 3.f) / float(std::min(H, 8)));
  const int per_row = std::max(1, std::min(H, int((ImGui::GetContentRegionAvail().x - fs * 3.f) / cell_w)));
  for (int l = 0; l < c.n_layers; ++l) {
    ImGui::Text("Layer %d", l);
    if (!ImGui::BeginTable(ui::fmt("##heads-layer-%d", l).c_str(), per_row,
                           ImGuiTableFlags_Borders | ImGuiTableFlags_SizingFixedSame))
      continue;
    for (int h = 0; h < H; ++h) {
      if (h % per_row == 0) ImGui::TableNextRow();
      ImGui::TableSetColumnIndex(h % per_row);
      const size_t idx = size_t(l * H + h);
      if (idx >= summary_.value().size()) continue;
      const HeadSummary& hs = summary_.value()[idx];
      ImGui::PushID(int(idx));
      const ImVec2 cell_min = ImGui::GetCursorScreenPos();
      // Background: the copying score on the diverging scale (red copies, blue anti-copies).
      const float t = std::isnan(hs.ov_copying_score) ? 0.f : float(hs.ov_copying_score);
      ImGui::TableSetBgColor(ImGuiTableBgTarget_CellBg, diverging_u32(t * 0.6f, 0.35f));
      ImGui::Text("head %d.%d", l, h);
      session_ui::head_badges(s, l, h, "heads");
      ImGui::Text("copying %s", score_text(hs.ov_copying_score).c_str());
      widgets::EigenPlot p;
      p.values = hs.ov_eigenvalues;
      p.size = fs * 5.f;
      p.labels = false;
      p.title = ui::fmt("OV eigenvalues of head %d.%d", l, h);
      const bool plot_clicked = widgets::eigen_plot("ev", p);
      ImGui::Text("diag %s / %s", score_text(hs.ov_diagonal_top1, "%.2f").c_str(),
                  score_text(hs.ov_diagonal_top5, "%.2f").c_str());
      ImGui::Text("positional %s", score_text(hs.positional_share, "%.2f").c_str());
      ImGui::Text("prev %s  cur %s", score_text(hs.attn_previous, "%.2f").c_str(),
                  score_text(hs.attn_current, "%.2f").c_str());
      const ImVec2 cell_max(cell_min.x + cell_w, ImGui::GetCursorScreenPos().y);
      ui::mark_rect(ui::fmt("heads_cell_%d_%d", l, h).c_str(), cell_min, cell_max);
      const bool hovered = ImGui::IsMouseHoveringRect(cell_min, cell_max);
      if (plot_clicked || (hovered && ImGui::IsMouseClicked(ImGuiMouseButton_Left))) {
        if (HeadView* hv = app().view<HeadView>()) {
          hv->select_head(s, l, h);
          app().request_tab(hv->id());
        }
      }
      if (hovered && !ImGui::IsItemHovered()) {
        ImGui::BeginTooltip();
        ImGui::Text("head %d.%d: click to open it", l, h);
        ImGui::Text("OV copying score %s, QK copying score %s", score_text(hs.ov_copying_score, "%.3f").c_str(),
                    score_text(hs.qk_copying_score, "%.3f").c_str());
        ImGui::EndTooltip();
      }
      ImGui::PopID();
    }
    ImGui::EndTable();
  }
}

}  // namespace cs::app
