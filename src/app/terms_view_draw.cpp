// The Term importance view's drawing (page build only; logic in
// terms_view.cpp): the sample, the loss by path order as bars, each term's
// marginal effect as a ranked bar list.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "app/colormap.h"
#include "app/session_ui.h"
#include "app/terms_view.h"
#include "app/ui.h"
#include "app/widgets.h"
#include "imgui.h"

namespace cs::app {

void TermsView::draw(Session& s) {
  ui::heading("Term importance: which paths carry the model's predictions");
  ui::explain(
      "With every attention pattern and LayerNorm scale frozen as they are on the sample, the logits are a sum of "
      "paths through the model: the direct path (embedding to unembedding, the bigram part), one term per head, one "
      "per virtual head (two heads in a row). Keep only some of them and see what the loss becomes: the direct path "
      "alone, then with every single head added, then with the virtual heads (which for two layers is the model "
      "again). Below, each term's own effect: how much the loss rises when only that term is taken out.");
  const LoadedModel* lm = session_ui::shown_for_view(s, "measure term importance", true);
  if (!lm) return;
  if (widgets::text_with_run("terms", text_box_, sel_.text, 8.f,
                             "The sample is cut into windows of n_ctx tokens, each starting with the BOS, and each "
                             "window's patterns are frozen from its own run (as `circuitscope terms --text` does).")) {
    try {
      set_text(s, text_box_.edit, sel_.max_order);
    } catch (const std::exception& e) {
      s.set_error(e.what());
    }
  }
  int order = sel_.max_order;
  ImGui::SetNextItemWidth(ImGui::GetFontSize() * 8.f);
  if (ImGui::SliderInt("longest path expanded (heads)", &order, 1, 3)) {
    try {
      set_text(s, sel_.text, order);
    } catch (const std::exception& e) {
      s.set_error(e.what());
    }
  }
  ui::help_marker("Paths through more heads than this are summed into one \"higher order\" term.");
  session_ui::job_progress(s, kSlot);
  if (!importance_.has()) return;
  widgets::Faded faded(importance_.freshness(sel_, s.generation(), s.jobs()).faded());
  const TermImportance& t = importance_.value().importance;
  const double uniform = std::log(double(lm->model.config().vocab_out()));
  ImGui::Text("%d predictions in %d window(s); the model's loss %.3f nats (uniform guessing: %.3f)", t.tokens,
              importance_.value().windows, t.loss_full, uniform);

  // ---- loss by order ----
  ImGui::Spacing();
  ImGui::TextUnformatted("loss keeping paths up to a number of heads (nats; shorter is better)");
  const double top = std::max(uniform, *std::max_element(t.loss_by_order.begin(), t.loss_by_order.end()));
  if (ImGui::BeginTable("##orders", 2, ImGuiTableFlags_SizingFixedFit, ImVec2(std::min(ImGui::GetContentRegionAvail().x, ImGui::GetFontSize() * 50.f), 0.f))) {
    ImGui::TableSetupColumn("what", ImGuiTableColumnFlags_WidthFixed);
    ImGui::TableSetupColumn("loss", ImGuiTableColumnFlags_WidthStretch);
    auto bar = [&](const std::string& label, double v, float color, uint32_t rgba = 0) {
      ImGui::TableNextRow();
      ImGui::TableSetColumnIndex(0);
      ImGui::TextUnformatted(label.c_str());
      ImGui::TableSetColumnIndex(1);
      ui::value_bar(float(v / top), rgba ? rgba : diverging_u32(color, 0.9f), ui::fmt("%.3f", v).c_str());
    };
    const char* names[] = {"direct path (+ biases)", "+ single heads", "+ virtual heads (2 heads)",
                           "+ 3-head paths"};
    for (size_t k = 0; k < t.loss_by_order.size(); ++k) {
      std::string label = k < 4 ? names[k] : ui::fmt("+ %zu-head paths", k);
      if (k + 1 == t.loss_by_order.size() && int(k) < lm->model.config().n_layers) label += " (+ higher order)";
      bar(label, t.loss_by_order[k], 0.55f);
    }
    bar("the model", t.loss_full, -0.55f);
    bar("uniform guess, ln(d_vocab)", uniform, 0.f, IM_COL32(110, 110, 110, 230));
    ImGui::EndTable();
  }
  ui::mark_item("terms_orders");

  // ---- each term ----
  ImGui::Spacing();
  ImGui::TextUnformatted("each term's effect: the loss without it minus the model's loss (nats)");
  std::vector<size_t> idx(t.terms.size());
  std::iota(idx.begin(), idx.end(), size_t(0));
  std::stable_sort(idx.begin(), idx.end(), [&t](size_t a, size_t b) { return t.loss_without[a] > t.loss_without[b]; });
  double emax = 0;
  for (double v : t.loss_without) emax = std::max(emax, std::abs(v - t.loss_full));
  std::vector<widgets::RankedRow> rows;
  for (size_t i : idx) {
    const double e = t.loss_without[i] - t.loss_full;
    rows.push_back(widgets::RankedRow{int(i), float(e), emax > 0 ? float(e / emax) : 0.f, ui::fmt("%+.3f", e)});
  }
  widgets::RankedTable rt;
  rt.label_header = "path";
  rt.value_header = "effect";
  rt.bar_header = "loss without it - loss";
  rt.id_column = false;
  rt.label = [&t, &s](int i) {
    const PathTerm& term = t.terms[size_t(i)];
    std::string label = term.name();
    if (term.heads.size() == 1) {
      const std::string b = session_ui::head_badge_text(s, term.heads[0].layer, term.heads[0].head);
      if (!b.empty()) label += "  (" + b + ")";
    }
    return label;
  };
  rt.tooltip = [&t](const widgets::RankedRow& row) {
    const PathTerm& term = t.terms[size_t(row.id)];
    ImGui::Text("%s: loss without it %.4f, %+.4f nats", term.name().c_str(), t.loss_without[size_t(row.id)],
                double(row.value));
    if (term.kind == PathTerm::kHeads && term.heads.size() > 1)
      ImGui::TextUnformatted("a virtual head: the first head's output read by the next through its values");
  };
  rt.max_visible_rows = 20;
  widgets::ranked_table("##terms", rt, rows);
  ui::mark_item("terms_table");
}

}  // namespace cs::app
