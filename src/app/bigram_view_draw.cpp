// The bigram view's drawing (page build only; its logic is bigram_view.cpp):
// the direct path W_E -> W_U, the zero-layer "bigram" table.
// Row = current token, column = next token (TransformerLens, row vectors):
//   logits[current, :] = ln_final(W_E[current]) @ W_U + b_U   [d_vocab_out]
#include <algorithm>
#include <string>

#include "app/bigram_view.h"
#include "app/session_ui.h"
#include "app/ui.h"
#include "app/widgets.h"
#include "imgui.h"

namespace cs::app {

namespace {

// A ranked token list as the widget kit's rows: the bar is the probability relative to the top one.
std::vector<widgets::RankedRow> ranked_rows(const std::vector<Ranked>& list) {
  float top = 0.f;
  for (const auto& r : list) top = std::max(top, r.prob);
  std::vector<widgets::RankedRow> rows;
  for (const auto& r : list)
    rows.push_back(widgets::RankedRow{r.id, r.logit, top > 0.f ? r.prob / top : 0.f,
                                      ui::fmt("%.2f%%", double(r.prob) * 100.0)});
  return rows;
}

}  // namespace

void BigramView::draw(Session& s) {
  const widgets::TokenText tokens = session_ui::token_text(s);
  const widgets::FindTokens find = session_ui::find_tokens(s);

  ui::heading("Direct path W_E \xE2\x86\x92 W_U: the zero-layer bigram table");
  ui::explain(
      "row = current token, column = next token; logits from the direct path alone. The token's embedding goes "
      "straight to the unembedding, skipping every attention head: logits = ln_final(W_E[current]) @ W_U + b_U "
      "(TransformerLens convention, row vectors; the paper's W_U W_E). A zero-layer model can only learn bigram "
      "statistics this way; in a deeper model it is the part of the prediction that ignores the context.");
  const LoadedModel* lm = session_ui::shown_for_view(s, "see its bigram table", false);
  if (!lm) return;
  ImGui::Separator();

  // Right-click menu on a token row: reuse the token elsewhere in the view.
  auto token_menu = [&](const widgets::RankedRow& r) {
    ImGui::TextDisabled("%s (#%d)", s.token_display(r.id).c_str(), r.id);
    if (ImGui::MenuItem("Use as current token")) select_source(s, r.id);
    if (ImGui::MenuItem("Use as next token (reverse lookup)")) select_next(s, r.id);
    if (ImGui::MenuItem("Add to heatmap")) add_block_tokens(s, {r.id});
  };
  auto row_tooltip = [&](const char* value_name) {
    return [&s, value_name](const widgets::RankedRow& r) {
      session_ui::token_tooltip(s, r.id);
      ImGui::Text("%s %.4f, %s", value_name, double(r.value), r.bar_text.c_str());
      ImGui::TextDisabled("click: use it; right-click: more");
    };
  };

  auto draw_next_tokens = [&] {
    ImGui::TextUnformatted("Current token");
    int picked = 0;
    if (widgets::token_picker("source", "type text, a token, or #id", ui_.source_picker, s.generation(), find, tokens,
                              &picked))
      select_source(s, picked);
    int id = sel_.source;
    if (widgets::token_id_input("id##source", &id, s.vocab())) select_source(s, id);
    ImGui::SameLine();
    widgets::token_chip(tokens, sel_.source);

    ImGui::Spacing();
    ImGui::Text("Most likely next tokens after");
    ImGui::SameLine();
    widgets::token_chip(tokens, sel_.source);
    int k = sel_.k;
    ImGui::SetNextItemWidth(ImGui::GetFontSize() * 10.f);
    if (ImGui::SliderInt("top k##next", &k, 1, std::min(100, std::max(1, s.vocab_out())))) set_top_k(s, k);
    session_ui::job_progress(s, kTopNextSlot);
    {
      widgets::Faded faded(top_next_.freshness(wanted_top_next(), s.generation(), s.jobs()).faded());
      widgets::RankedTable t;
      t.label_header = "next token";
      t.value_header = "logit";
      t.bar_header = "probability (bar: vs. top)";
      t.label = tokens.display;
      t.tooltip = row_tooltip("logit");
      t.context_menu = token_menu;
      const auto rows = ranked_rows(top_next_.has() ? top_next_.value() : std::vector<Ranked>{});
      if (auto i = widgets::ranked_table("##top-next", t, rows)) select_next(s, rows[*i].id);
    }
    ui::explain("Click a row to look it up in reverse (right); right-click to follow it as the current token.");
  };

  auto draw_reverse = [&] {
    ImGui::TextUnformatted("Reverse lookup: next token");
    int picked = 0;
    if (widgets::token_picker("next", "type text, a token, or #id", ui_.next_picker, s.generation(), find, tokens,
                              &picked))
      select_next(s, picked);
    int id = sel_.next;
    if (widgets::token_id_input("id##next", &id, s.vocab_out())) select_next(s, id);
    ImGui::SameLine();
    widgets::token_chip(tokens, sel_.next);

    ImGui::Spacing();
    ImGui::Text("Current tokens that most raise");
    ImGui::SameLine();
    widgets::token_chip(tokens, sel_.next);
    int k = sel_.k_sources;
    ImGui::SetNextItemWidth(ImGui::GetFontSize() * 10.f);
    if (ImGui::SliderInt("top k##sources", &k, 1, std::min(100, std::max(1, s.vocab())))) set_top_k_sources(s, k);
    session_ui::job_progress(s, kTopSourcesSlot);
    {
      widgets::Faded faded(top_sources_.freshness(wanted_top_sources(), s.generation(), s.jobs()).faded());
      widgets::RankedTable t;
      t.label_header = "current token";
      t.value_header = "its logit";
      t.bar_header = "p(next | current) (bar: vs. top)";
      t.label = tokens.display;
      t.tooltip = row_tooltip("logit");
      t.context_menu = token_menu;
      const auto rows = ranked_rows(top_sources_.has() ? top_sources_.value() : std::vector<Ranked>{});
      if (auto i = widgets::ranked_table("##top-sources", t, rows)) select_source(s, rows[*i].id);
    }
    ui::explain("Sorted by the logit this column gets from each row. Click a row to make it the current token.");
  };

  const bool two_columns = ImGui::GetContentRegionAvail().x > ImGui::GetFontSize() * 52.f;
  if (two_columns && ImGui::BeginTable("##bigram-columns", 2, ImGuiTableFlags_SizingStretchSame |
                                                                  ImGuiTableFlags_BordersInnerV)) {
    ImGui::TableNextRow();
    ImGui::TableSetColumnIndex(0);
    draw_next_tokens();
    ImGui::TableSetColumnIndex(1);
    draw_reverse();
    ImGui::EndTable();
  } else {
    draw_next_tokens();
    ImGui::Separator();
    draw_reverse();
  }

  ImGui::Separator();
  ImGui::TextUnformatted("Heatmap of bigram logits for a set of tokens");
  ui::explain(lm->model.processing.center_unembed
                  ? "Red: the direct path favours this next token, blue: it disfavours it (logits on a colour scale "
                    "symmetric around 0; after center_unembed, 0 is the row's average over the whole vocabulary). "
                    "Hover a cell for its value; click it to show the pair in the tables."
                  : "Red: larger logit, blue: smaller (colour scale symmetric around 0; raw weights are not "
                    "centred, so compare cells within a row). Hover a cell for its value; click it to show the "
                    "pair in the tables.");

  // The heatmap's tokens: add a phrase, the current token, the top next tokens; chips remove one.
  ImGui::SetNextItemWidth(std::min(ImGui::GetContentRegionAvail().x * 0.5f, ImGui::GetFontSize() * 18.f));
  bool add = ImGui::InputTextWithHint("##phrase", "type a phrase to add its tokens", ui_.phrase, sizeof ui_.phrase,
                                      ImGuiInputTextFlags_EnterReturnsTrue);
  ImGui::SameLine();
  add |= ImGui::Button("Add phrase");
  if (add && ui_.phrase[0]) {
    add_block_tokens(s, s.find_tokens(ui_.phrase).ids);
    ui_.phrase[0] = '\0';
  }
  ImGui::SameLine();
  if (ImGui::Button("Add current token")) add_block_tokens(s, {sel_.source});
  ImGui::SameLine();
  if (ImGui::Button("Add top next tokens") && top_next_.has()) {
    std::vector<int> ids;
    for (const auto& r : top_next_.value()) ids.push_back(r.id);
    add_block_tokens(s, ids);
  }
  ImGui::SameLine();
  if (ImGui::Button("Clear")) clear_block_tokens(s);
  for (size_t i = 0; i < sel_.block_tokens.size(); ++i) {
    if (i > 0) ImGui::SameLine();
    if (ImGui::GetContentRegionAvail().x < ImGui::GetFontSize() * 4.f) ImGui::NewLine();
    ImGui::PushID(int(i));
    const int t = sel_.block_tokens[i];
    const bool remove = ImGui::SmallButton((s.token_display(t) + "  x").c_str());
    if (ImGui::IsItemHovered()) {
      ImGui::BeginTooltip();
      session_ui::token_tooltip(s, t);
      ImGui::TextDisabled("click to remove");
      ImGui::EndTooltip();
    }
    ImGui::PopID();
    if (remove) {
      remove_block_token(s, i);
      break;
    }
  }
  ImGui::Spacing();

  const size_t n = sel_.block_tokens.size();
  if (n == 0 || !block_.has() || block_.value().rows() != long(n)) {
    ui::explain("Add tokens above to see their bigram logits as a heatmap.");
    return;
  }
  const std::vector<int> ids = block_.key();
  const RowMat& values = block_.value();
  widgets::Heatmap h;
  h.rows = h.cols = int(ids.size());
  h.value = [&values](int r, int c) { return values(r, c); };
  h.row_label = h.col_label = [&](int i) { return s.token_display(ids[size_t(i)]); };
  h.row_title = "current token (row)";
  h.col_title = "next token (column)";
  h.units = "logit";
  h.tooltip = [&](int r, int c) {
    const int rt = ids[size_t(r)], ct = ids[size_t(c)];
    ImGui::Text("current %s (#%d)", s.token_display(rt).c_str(), rt);
    ImGui::Text("next    %s (#%d)", s.token_display(ct).c_str(), ct);
    ImGui::Text("logit %.4f", double(values(r, c)));
  };
  h.click_hint = "click: show this pair in the tables above";
  h.mark = "heatmap_grid";
  if (auto cell = widgets::heatmap("bigram-heatmap", h)) {
    const int rt = ids[size_t(cell->row)], ct = ids[size_t(cell->col)];
    select_source(s, rt);
    select_next(s, ct);
  }
}

}  // namespace cs::app
