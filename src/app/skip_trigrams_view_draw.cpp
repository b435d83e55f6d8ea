// The Skip-trigrams view's drawing (page build only; logic in skip_trigrams_view.cpp).
#include <algorithm>
#include <numeric>
#include <string>

#include "app/session_ui.h"
#include "app/skip_trigrams_view.h"
#include "app/ui.h"
#include "app/widgets.h"
#include "imgui.h"

namespace cs::app {

void SkipTrigramsView::draw(Session& s) {
  const widgets::TokenText tokens = session_ui::token_text(s);
  const widgets::FindTokens find = session_ui::find_tokens(s);
  ui::heading("Skip-trigrams: [source] ... [destination] \xE2\x86\x92 [out]");
  ui::explain(
      "A one-layer head implements rules of the form \"when the current token is [destination] and [source] "
      "appeared earlier, predict [out]\": the destination attends to the source (a large QK entry) and attending "
      "to the source raises [out] (a large OV entry). Score = (QK entry / RMS of the QK circuit) x (OV entry / "
      "RMS of the OV circuit), over pairs where both are positive.");
  const LoadedModel* lm = session_ui::shown_for_view(s, "list its skip-trigrams", true);
  if (!lm) return;

  bool all = sel_.all_heads;
  if (ImGui::Checkbox("all heads", &all)) set_head(s, sel_.layer, sel_.head, all);
  if (!all) {
    ImGui::SameLine();
    int lh[2] = {sel_.layer, sel_.head};
    ImGui::SetNextItemWidth(ImGui::GetFontSize() * 6.f);
    if (ImGui::InputInt2("layer, head", lh)) set_head(s, lh[0], lh[1], false);
  }
  ImGui::SameLine();
  bool norm = sel_.embed_norm;
  if (ImGui::Checkbox("LayerNorm on W_E", &norm)) set_embed_norm(s, norm);
  ImGui::SameLine();
  int n = sel_.top_n;
  ImGui::SetNextItemWidth(ImGui::GetFontSize() * 8.f);
  if (ImGui::SliderInt("rows", &n, 1, 200)) set_top_n(s, n);

  // Filters: any of the three tokens.
  auto filter = [&](const char* id, const char* label, widgets::TokenPickerState& picker, int current, int which) {
    ImGui::PushID(id);
    ImGui::TextUnformatted(label);
    ImGui::SameLine();
    if (current >= 0) {
      widgets::token_chip(tokens, current);
      ImGui::SameLine();
      if (ImGui::SmallButton("any")) current = -2;
    } else {
      ImGui::TextDisabled("any");
    }
    int picked = -1;
    if (widgets::token_picker(id, "type to filter", picker, s.generation(), find, tokens, &picked)) current = picked;
    if (current != (which == 0 ? sel_.source : which == 1 ? sel_.destination : sel_.out)) {
      const int v = current < 0 ? -1 : current;
      set_filters(s, which == 0 ? v : sel_.source, which == 1 ? v : sel_.destination, which == 2 ? v : sel_.out);
    }
    ImGui::PopID();
  };
  if (ImGui::BeginTable("##filters", 3, ImGuiTableFlags_SizingStretchSame)) {
    ImGui::TableNextRow();
    ImGui::TableSetColumnIndex(0);
    filter("f_source", "source", source_picker, sel_.source, 0);
    ImGui::TableSetColumnIndex(1);
    filter("f_destination", "destination", destination_picker, sel_.destination, 1);
    ImGui::TableSetColumnIndex(2);
    filter("f_out", "out", out_picker, sel_.out, 2);
    ImGui::EndTable();
  }
  ImGui::Separator();
  session_ui::job_progress(s, kTableSlot);
  if (!table_.has()) return;
  widgets::Faded faded(table_.freshness(table_key(), s.generation(), s.jobs()).faded());
  const auto& rows = table_.value();
  if (rows.empty()) {
    ui::explain("No skip-trigram with both entries positive for this choice.");
    return;
  }

  // Sortable table; clicking rows picks the pair for the bug below.
  std::vector<size_t> order(rows.size());
  std::iota(order.begin(), order.end(), size_t(0));
  const ImGuiTableFlags flags = ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerV | ImGuiTableFlags_Sortable |
                                ImGuiTableFlags_ScrollY | ImGuiTableFlags_SizingFixedFit;
  const float h = std::min(float(rows.size()) + 1.5f, 18.f) * ImGui::GetTextLineHeightWithSpacing();
  if (ImGui::BeginTable("##trigrams", 8, flags, ImVec2(0.f, h))) {
    ImGui::TableSetupScrollFreeze(0, 1);
    ImGui::TableSetupColumn("#", ImGuiTableColumnFlags_DefaultSort);
    ImGui::TableSetupColumn("head");
    ImGui::TableSetupColumn("source");
    ImGui::TableSetupColumn("... destination");
    ImGui::TableSetupColumn("\xE2\x86\x92 out");
    ImGui::TableSetupColumn("QK");
    ImGui::TableSetupColumn("OV");
    ImGui::TableSetupColumn("score", ImGuiTableColumnFlags_WidthStretch);
    ImGui::TableHeadersRow();
    if (ImGuiTableSortSpecs* spec = ImGui::TableGetSortSpecs(); spec && spec->SpecsCount > 0) {
      sort_column = spec->Specs[0].ColumnIndex;
      sort_ascending = spec->Specs[0].SortDirection == ImGuiSortDirection_Ascending;
    }
    auto key = [&](size_t i) -> float {
      const HeadTrigram& e = rows[i];
      switch (sort_column) {
        case 1: return float(e.layer * 1000 + e.head);
        case 2: return float(e.t.source);
        case 3: return float(e.t.destination);
        case 4: return float(e.t.out);
        case 5: return e.t.qk;
        case 6: return e.t.ov;
        case 7: return e.t.score;
        default: return float(i);
      }
    };
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return sort_ascending ? key(a) < key(b) : key(a) > key(b);
    });
    for (size_t oi = 0; oi < order.size(); ++oi) {
      const size_t i = order[oi];
      const HeadTrigram& e = rows[i];
      ImGui::TableNextRow();
      ImGui::PushID(int(i));
      ImGui::TableSetColumnIndex(0);
      const bool chosen = int(i) == sel_.bug_a || int(i) == sel_.bug_b;
      if (ImGui::Selectable(ui::fmt("%zu", i + 1).c_str(), chosen, ImGuiSelectableFlags_SpanAllColumns)) {
        if (sel_.bug_a < 0 || sel_.bug_b >= 0)
          choose_bug_pair(s, int(i), -1);
        else
          choose_bug_pair(s, sel_.bug_a, int(i));
      }
      ImGui::TableSetColumnIndex(1);
      ImGui::Text("%d.%d", e.layer, e.head);
      ImGui::TableSetColumnIndex(2);
      ImGui::TextUnformatted(s.token_display(e.t.source).c_str());
      ImGui::TableSetColumnIndex(3);
      ImGui::TextUnformatted(s.token_display(e.t.destination).c_str());
      ImGui::TableSetColumnIndex(4);
      ImGui::TextUnformatted(s.token_display(e.t.out).c_str());
      ImGui::TableSetColumnIndex(5);
      ImGui::Text("%.3f", double(e.t.qk));
      ImGui::TableSetColumnIndex(6);
      ImGui::Text("%.3f", double(e.t.ov));
      ImGui::TableSetColumnIndex(7);
      ImGui::Text("%.3f", double(e.t.score));
      ImGui::PopID();
    }
    ImGui::EndTable();
  }
  ui::mark_item("skip_trigrams_table");

  ImGui::Spacing();
  ui::heading("The skip-trigram \"bug\"");
  ui::explain("A head's strength for (source, destination, out) is a QK entry times an OV entry, so two rules with "
              "the same source also make their crossed versions: \"keep ... in \xE2\x86\x92 mind\" and \"keep ... "
              "at \xE2\x86\x92 bay\" force \"keep ... in \xE2\x86\x92 bay\". Click two rows with the same source.");
  if (!bug_note_.empty()) ui::explain(bug_note_.c_str());
  if (bug_) {
    for (const SkipTrigram* t : {&bug_->a_destination_b_out, &bug_->b_destination_a_out})
      ImGui::Text("%s ... %s \xE2\x86\x92 %s   QK %.3f  OV %.3f  score %.3f", s.token_display(t->source).c_str(),
                  s.token_display(t->destination).c_str(), s.token_display(t->out).c_str(), double(t->qk),
                  double(t->ov), double(t->score));
  }
}

}  // namespace cs::app
