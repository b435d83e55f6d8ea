// Bigram panel: the direct path W_E -> W_U, the zero-layer "bigram" table.
// Row = current token, column = next token (TransformerLens, row vectors):
//   logits[current, :] = ln_final(W_E[current]) @ W_U + b_U   [d_vocab_out]
#include <algorithm>
#include <cmath>
#include <string>

#include "app/colormap.h"
#include "app/ui.h"
#include "app/views.h"
#include "imgui.h"

namespace cs::app {

namespace {

ui::TokenPicker g_source_picker;
ui::TokenPicker g_next_picker;
char g_phrase[256] = "";

// Truncated display form for axis labels (long tokens would crowd the heatmap).
std::string short_label(const AppState& s, int id, size_t max_chars = 14) {
  std::string t = s.token_display(id);
  size_t chars = 0, i = 0;
  while (i < t.size()) {
    if (chars == max_chars) return t.substr(0, i) + "...";
    unsigned char c = static_cast<unsigned char>(t[i]);
    i += c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    ++chars;
  }
  return t;
}

// Results of an earlier selection, shown faded while newer ones take more than a frame.
struct Stale {
  bool on;
  explicit Stale(bool stale) : on(stale) {
    if (on) ImGui::PushStyleVar(ImGuiStyleVar_Alpha, ImGui::GetStyle().Alpha * 0.45f);
  }
  ~Stale() {
    if (on) ImGui::PopStyleVar();
  }
  Stale(const Stale&) = delete;
  Stale& operator=(const Stale&) = delete;
};

// Right-click menu on a token row: reuse the token elsewhere in the panel.
void token_context_menu(AppState& s, int id) {
  if (ImGui::BeginPopupContextItem()) {
    ImGui::TextDisabled("%s (#%d)", s.token_display(id).c_str(), id);
    if (ImGui::MenuItem("Use as current token")) s.select_source(id);
    if (ImGui::MenuItem("Use as next token (reverse lookup)")) s.select_next(id);
    if (ImGui::MenuItem("Add to heatmap")) s.add_block_tokens({id});
    ImGui::EndPopup();
  }
}

// A ranked token list: rank, token, id, logit, probability bar. Clicking a row calls on_click.
template <class OnClick>
void ranked_table(AppState& s, const char* id, const std::vector<Ranked>& rows, const char* token_header,
                  const char* logit_header, const char* prob_header, OnClick on_click) {
  const ImGuiTableFlags flags = ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerV | ImGuiTableFlags_SizingFixedFit |
                                ImGuiTableFlags_ScrollY;
  const float h = std::min<float>(float(rows.size()) + 1.5f, 16.f) * ImGui::GetTextLineHeightWithSpacing();
  if (!ImGui::BeginTable(id, 5, flags, ImVec2(0.f, h))) return;
  ImGui::TableSetupScrollFreeze(0, 1);
  ImGui::TableSetupColumn("#");
  ImGui::TableSetupColumn(token_header);
  ImGui::TableSetupColumn("id");
  ImGui::TableSetupColumn(logit_header);
  ImGui::TableSetupColumn(prob_header, ImGuiTableColumnFlags_WidthStretch);
  ImGui::TableHeadersRow();
  float top_prob = 0.f;
  for (const auto& r : rows) top_prob = std::max(top_prob, r.prob);
  for (size_t i = 0; i < rows.size(); ++i) {
    const Ranked& r = rows[i];
    ImGui::TableNextRow();
    ImGui::TableSetColumnIndex(0);
    ImGui::PushID(int(i));
    if (ImGui::Selectable(ui::fmt("%zu", i + 1).c_str(), false, ImGuiSelectableFlags_SpanAllColumns)) on_click(r.id);
    if (ImGui::IsItemHovered()) {
      ImGui::BeginTooltip();
      ui::token_tooltip(s, r.id);
      ImGui::Text("logit %.4f, probability %.4g", double(r.logit), double(r.prob));
      ImGui::TextDisabled("click: use it; right-click: more");
      ImGui::EndTooltip();
    }
    token_context_menu(s, r.id);
    ImGui::PopID();
    ImGui::TableSetColumnIndex(1);
    ImGui::TextUnformatted(s.token_display(r.id).c_str());
    ImGui::TableSetColumnIndex(2);
    ImGui::TextDisabled("%d", r.id);
    ImGui::TableSetColumnIndex(3);
    ImGui::Text("%.3f", std::abs(r.logit) < 0.0005f ? 0.0 : double(r.logit));  // no "-0.000"
    ImGui::TableSetColumnIndex(4);
    ui::value_bar(top_prob > 0.f ? r.prob / top_prob : 0.f, diverging_u32(0.55f, 0.9f),
                  ui::fmt("%.2f%%", double(r.prob) * 100.0).c_str());
  }
  ImGui::EndTable();
}

void draw_next_tokens(AppState& s) {
  const BigramView& b = s.bigram();
  ImGui::TextUnformatted("Current token");
  int picked = 0;
  if (ui::token_picker("source", "type text, a token, or #id", g_source_picker, s, &picked)) s.select_source(picked);
  int id = b.source;
  if (ui::token_id_input("id##source", &id, s.vocab())) s.select_source(id);
  ImGui::SameLine();
  ui::token_chip(s, b.source);

  ImGui::Spacing();
  ImGui::Text("Most likely next tokens after");
  ImGui::SameLine();
  ui::token_chip(s, b.source);
  int k = b.k;
  ImGui::SetNextItemWidth(ImGui::GetFontSize() * 10.f);
  if (ImGui::SliderInt("top k##next", &k, 1, std::min(100, std::max(1, s.vocab_out())))) s.set_top_k(k);
  {
    Stale stale(ui::job_progress(s, AppState::kTopNextSlot) && s.jobs().info(AppState::kTopNextSlot)->frames > 0);
    ranked_table(s, "##top-next", b.top_next, "next token", "logit", "probability (bar: vs. top)",
                 [&](int t) { s.select_next(t); });
  }
  ui::explain("Click a row to look it up in reverse (right); right-click to follow it as the current token.");
}

void draw_reverse(AppState& s) {
  const BigramView& b = s.bigram();
  ImGui::TextUnformatted("Reverse lookup: next token");
  int picked = 0;
  if (ui::token_picker("next", "type text, a token, or #id", g_next_picker, s, &picked)) s.select_next(picked);
  int id = b.next;
  if (ui::token_id_input("id##next", &id, s.vocab_out())) s.select_next(id);
  ImGui::SameLine();
  ui::token_chip(s, b.next);

  ImGui::Spacing();
  ImGui::Text("Current tokens that most raise");
  ImGui::SameLine();
  ui::token_chip(s, b.next);
  int k = b.k_sources;
  ImGui::SetNextItemWidth(ImGui::GetFontSize() * 10.f);
  if (ImGui::SliderInt("top k##sources", &k, 1, std::min(100, std::max(1, s.vocab())))) s.set_top_k_sources(k);
  {
    Stale stale(ui::job_progress(s, AppState::kTopSourcesSlot) &&
                s.jobs().info(AppState::kTopSourcesSlot)->frames > 0);
    ranked_table(s, "##top-sources", b.top_sources, "current token", "its logit",
                 "p(next | current) (bar: vs. top)", [&](int t) { s.select_source(t); });
  }
  ui::explain("Sorted by the logit this column gets from each row. Click a row to make it the current token.");
}

void draw_heatmap(AppState& s) {
  const BigramView& b = s.bigram();
  const size_t n = b.block_tokens.size();
  if (n == 0 || b.block.rows() != long(n) || b.block.cols() != long(n)) {
    ui::explain("Add tokens above to see their bigram logits as a heatmap.");
    return;
  }
  std::vector<std::string> labels(n);
  float label_w = 0.f;
  for (size_t i = 0; i < n; ++i) {
    labels[i] = short_label(s, b.block_tokens[i]);
    label_w = std::max(label_w, ImGui::CalcTextSize(labels[i].c_str()).x);
  }
  float vmax = 0.f;
  for (long i = 0; i < b.block.size(); ++i)
    if (std::isfinite(b.block.data()[i])) vmax = std::max(vmax, std::abs(b.block.data()[i]));
  if (vmax == 0.f) vmax = 1.f;

  const float fs = ImGui::GetFontSize();
  const float line = ImGui::GetTextLineHeight();
  const float legend_bar = fs * 0.9f;
  const float legend_w = diverging_legend_width(legend_bar, vmax) + fs;
  const float row_axis_w = line + fs * 0.5f;  // rotated "current token" title
  const float avail = ImGui::GetContentRegionAvail().x - row_axis_w - label_w - legend_w - fs;
  const float cell = std::clamp(std::floor(avail / float(n)), fs * 0.8f, fs * 2.2f);
  // Column labels read horizontally when they fit in a cell, else upwards.
  const bool upright = label_w <= cell - 4.f;
  const float col_title_h = line + fs * 0.3f;
  const float col_label_h = (upright ? line : label_w) + fs * 0.4f;

  const ImVec2 origin = ImGui::GetCursorScreenPos();
  const ImVec2 grid(origin.x + row_axis_w + label_w + fs * 0.4f, origin.y + col_title_h + col_label_h);
  const float grid_w = cell * float(n), grid_h = cell * float(n);
  const char* row_title = "current token (row)";
  const float row_title_w = ImGui::CalcTextSize(row_title).x;
  const float body_h = std::max({grid_h, fs * 8.f, row_title_w});
  const float total_w = (grid.x - origin.x) + grid_w + legend_w;
  const float total_h = (grid.y - origin.y) + body_h + fs * 0.5f;
  ImGui::InvisibleButton("##heatmap", ImVec2(total_w, total_h));
  const bool hovered = ImGui::IsItemHovered();
  const bool clicked = ImGui::IsItemClicked(ImGuiMouseButton_Left);
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const ImU32 text = ImGui::GetColorU32(ImGuiCol_Text);
  const ImU32 muted = ImGui::GetColorU32(ui::kMutedText);

  // Axis titles.
  const char* col_title = "next token (column) \xE2\x86\x92";
  dl->AddText(ImVec2(grid.x, origin.y), muted, col_title);
  ui::add_text_vertical(dl, ImVec2(origin.x, grid.y + std::max(grid_h, row_title_w) * 0.5f + row_title_w * 0.5f),
                        muted, row_title);

  // Labels: rows on the left (right-aligned), columns above (reading upwards).
  for (size_t i = 0; i < n; ++i) {
    const float w = ImGui::CalcTextSize(labels[i].c_str()).x;
    dl->AddText(ImVec2(grid.x - fs * 0.4f - w, grid.y + cell * float(i) + (cell - line) * 0.5f), text,
                labels[i].c_str());
    if (upright)
      dl->AddText(ImVec2(grid.x + cell * float(i) + (cell - w) * 0.5f, grid.y - fs * 0.4f - line), text,
                  labels[i].c_str());
    else
      ui::add_text_vertical(dl, ImVec2(grid.x + cell * float(i) + (cell - line) * 0.5f, grid.y - fs * 0.4f), text,
                            labels[i].c_str());
  }

  // Cells.
  for (size_t r = 0; r < n; ++r)
    for (size_t c = 0; c < n; ++c) {
      const float v = b.block(long(r), long(c));
      const ImVec2 p0(grid.x + cell * float(c), grid.y + cell * float(r));
      dl->AddRectFilled(p0, ImVec2(p0.x + cell, p0.y + cell), diverging_u32(v / vmax));
    }
  dl->AddRect(grid, ImVec2(grid.x + grid_w, grid.y + grid_h), ImGui::GetColorU32(ImGuiCol_Border));
  ui::mark_rect("heatmap_grid", grid, ImVec2(grid.x + grid_w, grid.y + grid_h));

  // Legend.
  const ImVec2 legend_pos(grid.x + grid_w + fs, grid.y + line + 4.f);
  draw_diverging_legend(dl, legend_pos, ImVec2(legend_bar, std::max(grid_h, fs * 8.f) - line - 4.f), vmax, "logit");

  // Hover and click.
  if (hovered) {
    const ImVec2 m = ImGui::GetIO().MousePos;
    const int c = int(std::floor((m.x - grid.x) / cell));
    const int r = int(std::floor((m.y - grid.y) / cell));
    if (r >= 0 && c >= 0 && r < int(n) && c < int(n)) {
      const ImVec2 p0(grid.x + cell * float(c), grid.y + cell * float(r));
      dl->AddRect(p0, ImVec2(p0.x + cell, p0.y + cell), IM_COL32(0, 0, 0, 255), 0.f, 0, 2.f);
      const int rt = b.block_tokens[size_t(r)], ct = b.block_tokens[size_t(c)];
      ImGui::BeginTooltip();
      ImGui::Text("current %s (#%d)", s.token_display(rt).c_str(), rt);
      ImGui::Text("next    %s (#%d)", s.token_display(ct).c_str(), ct);
      ImGui::Text("logit %.4f", double(b.block(r, c)));
      ImGui::TextDisabled("click: show this pair in the tables above");
      ImGui::EndTooltip();
      if (clicked) {
        s.select_source(rt);
        s.select_next(ct);
      }
    }
  }
}

void draw_block_controls(AppState& s) {
  const BigramView& b = s.bigram();
  ImGui::SetNextItemWidth(std::min(ImGui::GetContentRegionAvail().x * 0.5f, ImGui::GetFontSize() * 18.f));
  bool add = ImGui::InputTextWithHint("##phrase", "type a phrase to add its tokens", g_phrase, sizeof g_phrase,
                                      ImGuiInputTextFlags_EnterReturnsTrue);
  ImGui::SameLine();
  add |= ImGui::Button("Add phrase");
  if (add && g_phrase[0]) {
    s.add_block_tokens(s.find_tokens(g_phrase).ids);
    g_phrase[0] = '\0';
  }
  ImGui::SameLine();
  if (ImGui::Button("Add current token")) s.add_block_tokens({b.source});
  ImGui::SameLine();
  if (ImGui::Button("Add top next tokens")) {
    std::vector<int> ids;
    for (const auto& r : b.top_next) ids.push_back(r.id);
    s.add_block_tokens(ids);
  }
  ImGui::SameLine();
  if (ImGui::Button("Clear")) s.clear_block_tokens();

  // The set, as removable chips.
  for (size_t i = 0; i < b.block_tokens.size(); ++i) {
    if (i > 0) ImGui::SameLine();
    if (ImGui::GetContentRegionAvail().x < ImGui::GetFontSize() * 4.f) ImGui::NewLine();
    ImGui::PushID(int(i));
    const int t = b.block_tokens[i];
    if (ImGui::SmallButton((s.token_display(t) + "  x").c_str())) {
      s.remove_block_token(i);
      ImGui::PopID();
      break;
    }
    if (ImGui::IsItemHovered()) {
      ImGui::BeginTooltip();
      ui::token_tooltip(s, t);
      ImGui::TextDisabled("click to remove");
      ImGui::EndTooltip();
    }
    ImGui::PopID();
  }
}

}  // namespace

void draw_bigram_panel(AppState& s) {
  ui::heading("Direct path W_E \xE2\x86\x92 W_U: the zero-layer bigram table");
  ui::explain(
      "row = current token, column = next token; logits from the direct path alone. The token's embedding goes "
      "straight to the unembedding, skipping every attention head: logits = ln_final(W_E[current]) @ W_U + b_U "
      "(TransformerLens convention, row vectors; the paper's W_U W_E). A zero-layer model can only learn bigram "
      "statistics this way; in a deeper model it is the part of the prediction that ignores the context.");
  const LoadedModel* lm = s.shown();
  if (!lm) {
    ui::explain("Load a model to see its bigram table.");
    return;
  }
  ImGui::PushStyleColor(ImGuiCol_Text, ui::kAccentText);
  ImGui::TextWrapped("Numbers from the %s.",
                     lm->model.processing.any() ? "processed weights (TransformerLens defaults)"
                                                : "raw weights (as stored)");
  ImGui::PopStyleColor();
  ImGui::Separator();

  const bool two_columns = ImGui::GetContentRegionAvail().x > ImGui::GetFontSize() * 52.f;
  if (two_columns && ImGui::BeginTable("##bigram-columns", 2, ImGuiTableFlags_SizingStretchSame |
                                                                  ImGuiTableFlags_BordersInnerV)) {
    ImGui::TableNextRow();
    ImGui::TableSetColumnIndex(0);
    draw_next_tokens(s);
    ImGui::TableSetColumnIndex(1);
    draw_reverse(s);
    ImGui::EndTable();
  } else {
    draw_next_tokens(s);
    ImGui::Separator();
    draw_reverse(s);
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
  draw_block_controls(s);
  ImGui::Spacing();
  draw_heatmap(s);
}

}  // namespace cs::app
