// The Head view's drawing (page build only; logic in head_view.cpp).
#include <algorithm>
#include <cmath>
#include <string>

#include "app/head_view.h"
#include "app/session_ui.h"
#include "app/ui.h"
#include "app/widgets.h"
#include "imgui.h"

namespace cs::app {

void HeadView::draw(Session& s) {
  const LoadedModel* lm = s.shown();
  ui::heading(lm && lm->model.config().n_layers > 0
                  ? ui::fmt("Head %d.%d: its OV and QK circuits", sel_.layer, sel_.head).c_str()
                  : "Head: its OV and QK circuits");
  if (lm && lm->model.config().n_layers > 0 && !session_ui::head_badge_text(s, sel_.layer, sel_.head).empty()) {
    ImGui::TextDisabled("what the detector finds:");
    session_ui::head_badges(s, sel_.layer, sel_.head, "head");
  }
  ui::explain(
      "A head does two things. Its QK circuit decides where it looks: a destination (query) token attends to "
      "source (key) tokens with large QK entries, E W_Q W_K^T E^T. Its OV circuit decides what it writes once it "
      "looks: attending to a source token changes every output logit by the OV entry, E W_V W_O W_U. Rows and "
      "columns are computed from the weights (TransformerLens convention, row vectors; the paper writes the "
      "transposes). E = each row of W_E, through the head's LayerNorm unless unticked.");
  if (!session_ui::shown_for_view(s, "explore its heads", true)) return;
  const ModelConfig& c = lm->model.config();
  int lh[2] = {sel_.layer, sel_.head};
  ImGui::SetNextItemWidth(fmaxf(ImGui::GetFontSize() * 6.f, 80.f));
  if (ImGui::InputInt2("layer, head", lh)) select_head(s, lh[0], lh[1]);
  ui::mark_item("head_select");
  ImGui::SameLine();
  bool norm = sel_.embed_norm;
  if (ImGui::Checkbox("LayerNorm on W_E", &norm)) set_embed_norm(s, norm);
  ImGui::SameLine();
  int k = sel_.k;
  ImGui::SetNextItemWidth(ImGui::GetFontSize() * 8.f);
  if (ImGui::SliderInt("top k", &k, 1, std::min(100, std::max(1, s.vocab())))) set_k(s, k);
  ImGui::Separator();

  // One explorer column: a token picker and the ranked list it selects.
  auto explorer = [&](const char* id, const char* pick_label, widgets::TokenPickerState& picker, int selected,
                      int n, void (HeadView::*select)(Session&, int), const char* list_title, const Ranking& r,
                      int wanted, const char* slot, const char* label_header, const char* value_header,
                      void (HeadView::*follow)(Session&, int)) {
    session_ui::CircuitExplorer e;
    e.id = id;
    e.pick_label = pick_label;
    e.picker = &picker;
    e.selected = selected;
    e.n = n;
    e.select = [this, &s, select](int t) { (this->*select)(s, t); };
    e.list_title = list_title;
    e.list = r.has() ? &r.value() : nullptr;
    e.faded = r.freshness(query(wanted), s.generation(), s.jobs()).faded();
    e.slot = slot;
    e.label_header = label_header;
    e.value_header = value_header;
    e.follow = [this, &s, follow](int t) { (this->*follow)(s, t); };
    session_ui::circuit_explorer(s, e);
  };
  auto pair = [](auto left, auto right, const char* table_id) { session_ui::side_by_side(table_id, left, right); };

  if (ImGui::CollapsingHeader("OV circuit: what attending to a token writes", ImGuiTreeNodeFlags_DefaultOpen)) {
    ui::explain("Rows: the source token attended to; columns: the output logit it changes. A copying head puts "
                "the source token itself near the top of its own list.");
    pair([&] {
           explorer("ov_source", "Source token (attended to)", ov_source_picker, sel_.ov_source, s.vocab(),
                    &HeadView::select_ov_source, "Outputs it raises most", ov_outs_, sel_.ov_source, kOvOutsSlot,
                    "out token", "OV entry", &HeadView::select_ov_out);
         },
         [&] {
           explorer("ov_out", "Output token", ov_out_picker, sel_.ov_out, s.vocab_out(), &HeadView::select_ov_out,
                    "Sources that raise it most", ov_sources_, sel_.ov_out, kOvSourcesSlot, "source token",
                    "OV entry", &HeadView::select_ov_source);
         },
         "##ov-columns");
  }
  if (ImGui::CollapsingHeader("QK circuit: where the head looks", ImGuiTreeNodeFlags_DefaultOpen)) {
    ui::explain("Rows: the destination (query) token, the one being predicted from; columns: the source (key) "
                "token it may attend to. Entries are attention scores before the scale and the softmax.");
    pair([&] {
           explorer("qk_destination", "Destination token (query)", qk_destination_picker, sel_.qk_destination,
                    s.vocab(), &HeadView::select_qk_destination, "Sources it attends to most", qk_sources_,
                    sel_.qk_destination, kQkSourcesSlot, "source token", "QK entry", &HeadView::select_qk_source);
         },
         [&] {
           explorer("qk_source", "Source token (key)", qk_source_picker, sel_.qk_source, s.vocab(),
                    &HeadView::select_qk_source, "Destinations that attend to it most", qk_destinations_,
                    sel_.qk_source, kQkDestinationsSlot, "destination token", "QK entry",
                    &HeadView::select_qk_destination);
         },
         "##qk-columns");
  }
  if (ImGui::CollapsingHeader("Eigenvalues: does the head copy?", ImGuiTreeNodeFlags_DefaultOpen)) {
    ui::explain("The full circuits are vocab x vocab but have rank at most d_head, so their nonzero eigenvalues "
                "are those of a small d_head x d_head product. Positive real parts (red) mean copying on average: "
                "score = sum Re(\xCE\xBB) / sum |\xCE\xBB|, from -1 to +1.");
    session_ui::job_progress(s, kEigenSlot);
    if (eigen_.has()) {
      widgets::Faded faded(eigen_.freshness(head_key(), s.generation(), s.jobs()).faded());
      const HeadEigen& e = eigen_.value();
      if (ImGui::BeginTable("##eigen", 2, ImGuiTableFlags_SizingStretchSame)) {
        ImGui::TableNextRow();
        ImGui::TableSetColumnIndex(0);
        if (e.ov.empty()) {
          ImGui::TextWrapped("OV: not square (d_vocab != d_vocab_out), no eigenvalues.");
        } else {
          ImGui::Text("OV circuit: copying score %+.3f", e.ov_score);
          widgets::EigenPlot p;
          p.values = e.ov;
          p.title = "OV eigenvalues";
          p.mark = "head_ov_eigen";
          widgets::eigen_plot("ov", p);
        }
        ImGui::TableSetColumnIndex(1);
        ImGui::Text("QK circuit: score %+.3f", e.qk_score);
        widgets::EigenPlot p;
        p.values = e.qk;
        p.title = "QK eigenvalues (positive: tokens attend to copies of themselves)";
        p.mark = "head_qk_eigen";
        widgets::eigen_plot("qk", p);
        ImGui::EndTable();
      }
    }
  }
  if (c.positional != PosEmbed::None &&
      ImGui::CollapsingHeader("Positional QK: attention from positions alone", ImGuiTreeNodeFlags_DefaultOpen)) {
    ui::explain("P W_Q W_K^T P^T: rows are query positions, columns key positions (only keys at or before the "
                "query count: the upper triangle is masked in the model). A bright band just left of the "
                "diagonal is a previous-token head.");
    int first = sel_.pos_first, count = sel_.pos_count;
    ImGui::SetNextItemWidth(ImGui::GetFontSize() * 10.f);
    bool changed = ImGui::SliderInt("first position", &first, 0, std::max(0, c.n_ctx - count));
    ImGui::SameLine();
    ImGui::SetNextItemWidth(ImGui::GetFontSize() * 8.f);
    changed |= ImGui::SliderInt("positions", &count, 2, std::min(64, c.n_ctx));
    if (changed) set_positions(s, first, count);
    if (positional_.has()) {
      const RowMat& P = positional_.value();
      const int p0 = positional_.key().first;
      widgets::Heatmap h;
      h.rows = int(P.rows());
      h.cols = int(P.cols());
      h.value = [&P](int r, int col) { return P(r, col); };
      h.row_label = [p0](int i) { return std::to_string(p0 + i); };
      h.col_label = [p0](int i) { return std::to_string(p0 + i); };
      h.row_title = "query position (destination)";
      h.col_title = "key position (source)";
      h.units = "score";
      h.mark = "head_positional";
      widgets::heatmap("##positional", h);
    }
  }
}

}  // namespace cs::app
