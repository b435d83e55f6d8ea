// The Session's tokens and jobs for the widget kit (session_ui.h).
#include "app/session_ui.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "app/ui.h"
#include "imgui.h"
#include "io/tokenizer.h"

namespace cs::app::session_ui {

void token_tooltip(const Session& s, int id) {
  ImGui::Text("token %s", s.token_display(id).c_str());
  ImGui::TextDisabled("id %d", id);
  const LoadedModel* m = s.shown();
  if (m && m->tokenizer)
    ImGui::TextDisabled("vocabulary string: %s", visible_bytes(m->tokenizer->token_string(id)).c_str());
}

widgets::TokenText token_text(const Session& s) {
  return widgets::TokenText{[&s](int id) { return s.token_display(id); },
                            [&s](int id) { token_tooltip(s, id); }};
}

widgets::FindTokens find_tokens(const Session& s) {
  return [&s](const std::string& query, std::vector<int>& ids, std::string& note) {
    TokenMatches m = s.find_tokens(query);
    ids = std::move(m.ids);
    note = std::move(m.note);
  };
}

bool job_progress(Session& s, const char* slot) {
  const JobRunner::Info* j = s.jobs().info(slot);
  if (!j) return false;
  if (j->frames == 0) return true;
  if (widgets::progress_line(slot, "computing the " + j->label + "...", j->progress)) s.jobs().cancel(slot);
  return true;
}

const LoadedModel* shown_for_view(const Session& s, const char* what, bool needs_layers) {
  const LoadedModel* lm = s.shown();
  if (!lm) {
    ui::explain((std::string("Load a model to ") + what + ".").c_str());
    return nullptr;
  }
  if (needs_layers && lm->model.config().n_layers == 0) {
    ui::explain("This model has no attention layers: only the direct path (the bigram table).");
    return nullptr;
  }
  ImGui::PushStyleColor(ImGuiCol_Text, ui::kAccentText);
  ImGui::TextWrapped("Numbers from the %s.", lm->model.processing.any()
                                                 ? "processed weights (TransformerLens defaults)"
                                                 : "raw weights (as stored)");
  ImGui::PopStyleColor();
  return lm;
}

namespace {

struct Badge {
  const char* kind;   // rects name part
  const char* label;  // drawn
  const char* words;  // tooltips
  ImU32 color;
};
// Colours apart from the diverging scale's red and blue.
constexpr Badge kBadges[] = {
    {"previous_token", "prev", "previous token", IM_COL32(120, 90, 200, 255)},
    {"induction", "induction", "induction", IM_COL32(30, 150, 110, 255)},
    {"copying", "copying", "copying", IM_COL32(190, 130, 30, 255)},
};

bool has(const HeadBadges& b, int i, int l, int h) {
  if (l < 0 || h < 0 || l >= b.prefix_matching().rows() || h >= b.prefix_matching().cols()) return false;
  return i == 0 ? b.previous(l, h) : i == 1 ? b.induction(l, h) : b.copying(l, h);
}

}  // namespace

void head_badges(const Session& s, int layer, int head, const char* where) {
  const HeadBadges* b = s.badges();
  if (!b) return;
  for (int i = 0; i < 3; ++i) {
    if (!has(*b, i, layer, head)) continue;
    ImGui::SameLine(0.f, 3.f);
    const Badge& k = kBadges[i];
    const ImVec2 pad(3.f, 0.f);
    const ImVec2 size = ImGui::CalcTextSize(k.label);
    const ImVec2 p = ImGui::GetCursorScreenPos();
    const float y = p.y + (ImGui::GetFrameHeight() - size.y) * 0.5f;
    ImDrawList* dl = ImGui::GetWindowDrawList();
    dl->AddRectFilled(ImVec2(p.x, y - 1.f), ImVec2(p.x + size.x + 2 * pad.x, y + size.y + 1.f), k.color, 3.f);
    dl->AddText(ImVec2(p.x + pad.x, y), IM_COL32(255, 255, 255, 255), k.label);
    ImGui::Dummy(ImVec2(size.x + 2 * pad.x, ImGui::GetFrameHeight()));
    if (ImGui::IsItemHovered()) {
      const double v = i == 0 ? b->previous_token()(layer, head) : i == 1 ? b->prefix_matching()(layer, head) : b->ov_copying(layer, head);
      const double t = i == 0 ? HeadBadges::kPrevious : i == 1 ? HeadBadges::kInduction : HeadBadges::kCopying;
      ImGui::SetTooltip("head %d.%d: %s head\n%s %.2f (badge from %.2f)", layer, head, k.words,
                        i == 0 ? "previous-token score on repeated random tokens"
                               : i == 1 ? "prefix-matching score on repeated random tokens"
                                        : "OV copying score (eigenvalue positivity)",
                        v, t);
    }
    ui::mark_item(ui::fmt("badge_%s_%s_%d.%d", where, k.kind, layer, head).c_str());
  }
}

std::string head_badge_text(const Session& s, int layer, int head) {
  const HeadBadges* b = s.badges();
  if (!b) return {};
  std::string out;
  for (int i = 0; i < 3; ++i)
    if (has(*b, i, layer, head)) out += (out.empty() ? "" : ", ") + std::string(kBadges[i].words);
  return out;
}

void head_badge_line(const Session& s, int layer, int head) {
  const std::string b = head_badge_text(s, layer, head);
  if (!b.empty()) ImGui::TextDisabled("%d.%d: %s head", layer, head, b.c_str());
}

void circuit_explorer(Session& s, const CircuitExplorer& e) {
  const widgets::TokenText tokens = token_text(s);
  ImGui::PushID(e.id);
  ImGui::TextUnformatted(e.pick_label);
  int picked = 0;
  if (widgets::token_picker(e.id, "type text, a token, or #id", *e.picker, s.generation(), find_tokens(s), tokens,
                            &picked))
    e.select(picked);
  int tid = e.selected;
  if (widgets::token_id_input("id", &tid, e.n)) e.select(tid);
  ImGui::SameLine();
  widgets::token_chip(tokens, e.selected);
  ImGui::TextUnformatted(e.list_title);
  job_progress(s, e.slot);
  widgets::Faded faded(e.faded);
  widgets::RankedTable t;
  t.label_header = e.label_header;
  t.value_header = e.value_header;
  t.bar_header = "vs. the largest";
  t.label = tokens.display;
  t.tooltip = [&s](const widgets::RankedRow& row) {
    token_tooltip(s, row.id);
    ImGui::Text("entry %.4f", double(row.value));
    ImGui::TextDisabled("click: follow this token");
  };
  float top = 0.f;
  if (e.list)
    for (const IdValue& r : *e.list) top = std::max(top, std::abs(r.value));
  std::vector<widgets::RankedRow> rows;
  if (e.list)
    for (const IdValue& r : *e.list)
      rows.push_back(widgets::RankedRow{r.id, r.value, top > 0.f ? r.value / top : 0.f, ui::fmt("%.3f", double(r.value))});
  if (auto i = widgets::ranked_table(ui::fmt("##%s-table", e.id).c_str(), t, rows)) e.follow(rows[*i].id);
  ImGui::PopID();
}

void side_by_side(const char* table_id, const std::function<void()>& left, const std::function<void()>& right) {
  const bool two_columns = ImGui::GetContentRegionAvail().x > ImGui::GetFontSize() * 52.f;
  if (two_columns && ImGui::BeginTable(table_id, 2, ImGuiTableFlags_SizingStretchSame | ImGuiTableFlags_BordersInnerV)) {
    ImGui::TableNextRow();
    ImGui::TableSetColumnIndex(0);
    left();
    ImGui::TableSetColumnIndex(1);
    right();
    ImGui::EndTable();
  } else {
    left();
    right();
  }
}

}  // namespace cs::app::session_ui
