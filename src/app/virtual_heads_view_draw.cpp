// The Virtual heads view's drawing (page build only; logic in virtual_heads_view.cpp).
#include <algorithm>
#include <cmath>
#include <string>

#include "app/session_ui.h"
#include "app/ui.h"
#include "app/virtual_heads_view.h"
#include "app/widgets.h"
#include "core/error.h"
#include "imgui.h"

namespace cs::app {

namespace {

// "0.3 -> 1.4": the earlier head first, as the signal flows.
std::string flow_text(const VirtualHeadRef& v) { return head_text(v.l1, v.h1) + " -> " + head_text(v.l2, v.h2); }
}  // namespace

void VirtualHeadsView::draw(Session& s) {
  const auto head = shown_head(s);
  ui::heading(head ? ("Virtual head " + flow_text(*head) + ": one head reading another's output").c_str()
                   : "Virtual heads: one head reading another's output");
  ui::explain(
      "When a head of a later layer attends to a position, its values read what earlier heads wrote there. "
      "Head h1's output moved again by head h2 is a virtual head: its OV circuit is the product of the two, "
      "E W_V1 W_O1 W_V2 W_O2 W_U (row vectors, TransformerLens convention). The list ranks every pair by the size "
      "of that product, ||W_OV1 W_OV2||; most are small, because a later head rarely reads what an earlier head "
      "writes. Pick one to explore its OV circuit like a single head's.");
  const LoadedModel* lm = session_ui::shown_for_view(s, "explore its virtual heads", true);
  if (!lm) return;
  if (lm->model.config().n_layers < 2) {
    ImGui::TextWrapped("This model has one layer: no head has an earlier head to read from.");
    return;
  }

  session_ui::side_by_side(
      "##virtual-layout",
      [&] {
        ImGui::TextUnformatted("Virtual heads, largest first");
        session_ui::job_progress(s, kRankingSlot);
        if (!ranking_.has()) return;
        widgets::Faded faded(ranking_.freshness(RankingKey{}, s.generation(), s.jobs()).faded());
        const std::vector<VirtualHeadNorm>& r = ranking_.value();
        const double top = r.empty() ? 0.0 : r.front().norm;
        std::vector<widgets::RankedRow> rows;
        for (size_t i = 0; i < r.size(); ++i)
          rows.push_back(widgets::RankedRow{int(i), float(r[i].norm), top > 0 ? float(r[i].norm / top) : 0.f,
                                            ui::fmt("V %.2f", r[i].v_composition)});
        widgets::RankedTable t;
        t.label_header = "earlier -> later";
        t.value_header = "||W_OV1 W_OV2||";
        t.bar_header = "vs. the largest; V-composition";
        t.id_column = false;
        t.mark = "virtual_rank";
        t.label = [&r](int i) { return flow_text(r[size_t(i)].head); };
        t.tooltip = [&r, &s](const widgets::RankedRow& row) {
          const VirtualHeadNorm& v = r[size_t(row.id)];
          ImGui::Text("head %s reading what head %s wrote", head_text(v.head.l2, v.head.h2).c_str(),
                      head_text(v.head.l1, v.head.h1).c_str());
          ImGui::Text("||W_OV1 W_OV2|| = %.4g, V-composition %.3f", v.norm, v.v_composition);
          session_ui::head_badge_line(s, v.head.l1, v.head.h1);
          session_ui::head_badge_line(s, v.head.l2, v.head.h2);
          ImGui::TextDisabled("click: explore its OV circuit");
        };
        if (auto i = widgets::ranked_table("##virtual-ranking", t, rows)) {
          const VirtualHeadRef v = r[*i].head;
          select_virtual_head(s, v.l1, v.h1, v.l2, v.h2);
        }
      },
      [&] {
        if (!head) return;
        ImGui::Text("Exploring %s", flow_text(*head).c_str());
        for (const auto& [l, h] : {std::pair{head->l1, head->h1}, std::pair{head->l2, head->h2}})
          if (!session_ui::head_badge_text(s, l, h).empty()) {
            ImGui::TextDisabled("%s:", head_text(l, h).c_str());
            session_ui::head_badges(s, l, h, "virtual");
          }
        int pick[4] = {head->l1, head->h1, head->l2, head->h2};
        ImGui::SetNextItemWidth(ImGui::GetFontSize() * 12.f);
        if (ImGui::InputInt4("earlier L.H, later L.H", pick)) {
          try {
            select_virtual_head(s, pick[0], pick[1], pick[2], pick[3]);
          } catch (const Error&) {
            // Not an (earlier, later) pair yet while typing: the shown one stays.
          }
        }
        ui::mark_item("virtual_select");
        bool norm = sel_.embed_norm;
        if (ImGui::Checkbox("LayerNorm on W_E", &norm)) set_embed_norm(s, norm);
        ImGui::SameLine();
        int k = sel_.k;
        ImGui::SetNextItemWidth(ImGui::GetFontSize() * 8.f);
        if (ImGui::SliderInt("top k", &k, 1, std::min(100, std::max(1, s.vocab())))) set_k(s, k);
        if (sel_.earlier_layer >= 0) {
          ImGui::SameLine();
          if (ImGui::SmallButton("back to the largest")) {
            VirtualHeadSelection largest = sel_;
            largest.earlier_layer = -1;
            set_selection_json(s, largest.to_json());
          }
        }
        ImGui::TextDisabled("eigenvalues of its OV circuit:");
        session_ui::job_progress(s, kEigenSlot);
        if (const auto k_now = key(s); eigen_.has() && k_now) {
          widgets::Faded faded(eigen_.freshness(*k_now, s.generation(), s.jobs()).faded());
          const HeadEigen& e = eigen_.value();
          if (e.ov.empty()) {
            ImGui::TextWrapped("not square (d_vocab != d_vocab_out): no eigenvalues.");
          } else {
            ImGui::Text("copying score %+.3f", e.ov_score);
            widgets::EigenPlot p;
            p.values = e.ov;
            p.size = ImGui::GetFontSize() * 9.f;
            p.title = "OV eigenvalues of the virtual head " + flow_text(*head);
            p.mark = "virtual_ov_eigen";
            widgets::eigen_plot("virtual-eigen", p);
          }
        }
      });

  if (!head) return;
  ImGui::Separator();
  ui::heading("Its OV circuit: what h2 attending to h1's output writes");
  ui::explain("Rows: the source token h1 attended to; columns: the output logit changed once h2 attends to where "
              "h1 put it. E is W_E through h1's LayerNorm. A copying virtual head puts the source token near the "
              "top of its own list.");
  auto explorer = [&](const char* id, const char* pick_label, widgets::TokenPickerState& picker, int selected, int n,
                      void (VirtualHeadsView::*select)(Session&, int), const char* list_title, const List& r,
                      const char* slot, const char* label_header, void (VirtualHeadsView::*follow)(Session&, int)) {
    session_ui::CircuitExplorer e;
    e.id = id;
    e.pick_label = pick_label;
    e.picker = &picker;
    e.selected = selected;
    e.n = n;
    e.select = [this, &s, select](int t) { (this->*select)(s, t); };
    e.list_title = list_title;
    e.list = r.has() ? &r.value() : nullptr;
    const auto q = query(s, selected);
    e.faded = q && r.freshness(*q, s.generation(), s.jobs()).faded();
    e.slot = slot;
    e.label_header = label_header;
    e.value_header = "OV entry";
    e.follow = [this, &s, follow](int t) { (this->*follow)(s, t); };
    session_ui::circuit_explorer(s, e);
  };
  session_ui::side_by_side(
      "##virtual-ov",
      [&] {
        explorer("virtual_ov_source", "Source token (h1 attended to)", ov_source_picker, sel_.ov_source, s.vocab(),
                 &VirtualHeadsView::select_ov_source, "Outputs it raises most", ov_outs_, kOvOutsSlot, "out token",
                 &VirtualHeadsView::select_ov_out);
      },
      [&] {
        explorer("virtual_ov_out", "Output token", ov_out_picker, sel_.ov_out, s.vocab_out(),
                 &VirtualHeadsView::select_ov_out, "Sources that raise it most", ov_sources_, kOvSourcesSlot,
                 "source token", &VirtualHeadsView::select_ov_source);
      });
}

}  // namespace cs::app
