// The widget kit (widgets.h), drawn with Dear ImGui.
#include "app/widgets.h"

#include <algorithm>
#include <cmath>

#include "app/colormap.h"
#include "app/ui.h"
#include "imgui.h"

namespace cs::app::widgets {

namespace {

// At most max_chars UTF-8 characters, then "..." (long tokens would crowd an axis).
std::string shorten(const std::string& t, size_t max_chars = 14) {
  size_t chars = 0, i = 0;
  while (i < t.size()) {
    if (chars == max_chars) return t.substr(0, i) + "...";
    const unsigned char c = static_cast<unsigned char>(t[i]);
    i += c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    ++chars;
  }
  return t;
}

std::string label_of(const std::function<std::string(int)>& f, int i) { return f ? f(i) : std::to_string(i); }

}  // namespace

// ---- heatmap ------------------------------------------------------------------

std::optional<HeatmapCell> heatmap(const char* id, const Heatmap& h) {
  const int R = h.rows, C = h.cols;
  if (R <= 0 || C <= 0 || !h.value) return std::nullopt;
  ImGui::PushID(id);
  std::vector<std::string> rl(static_cast<size_t>(R)), cl(static_cast<size_t>(C));
  float row_label_w = 0.f, col_label_w = 0.f;
  for (int i = 0; i < R; ++i) {
    rl[size_t(i)] = shorten(label_of(h.row_label, i));
    row_label_w = std::max(row_label_w, ImGui::CalcTextSize(rl[size_t(i)].c_str()).x);
  }
  for (int i = 0; i < C; ++i) {
    cl[size_t(i)] = shorten(label_of(h.col_label, i));
    col_label_w = std::max(col_label_w, ImGui::CalcTextSize(cl[size_t(i)].c_str()).x);
  }
  float vmax = h.vmax;
  if (!(vmax > 0.f)) {
    vmax = 0.f;
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c)
        if (const float v = h.value(r, c); std::isfinite(v)) vmax = std::max(vmax, std::abs(v));
    if (vmax == 0.f) vmax = 1.f;
  }

  const float fs = ImGui::GetFontSize();
  const float line = ImGui::GetTextLineHeight();
  const float legend_bar = fs * 0.9f;
  const float legend_w = std::max(diverging_legend_width(legend_bar, vmax), ImGui::CalcTextSize(h.units.c_str()).x) + fs;
  const float row_axis_w = line + fs * 0.5f;  // rotated row title
  const float avail = ImGui::GetContentRegionAvail().x - row_axis_w - row_label_w - legend_w - fs;
  const float cell = std::clamp(std::floor(avail / float(C)), fs * 0.8f, fs * 2.2f);
  // Column labels read horizontally when they fit in a cell, else upwards.
  const bool upright = col_label_w <= cell - 4.f;
  const float col_title_h = line + fs * 0.3f;
  const float col_label_h = (upright ? line : col_label_w) + fs * 0.4f;

  const ImVec2 origin = ImGui::GetCursorScreenPos();
  const ImVec2 grid(origin.x + row_axis_w + row_label_w + fs * 0.4f, origin.y + col_title_h + col_label_h);
  const float grid_w = cell * float(C), grid_h = cell * float(R);
  const std::string row_title = h.row_title;
  const float row_title_w = ImGui::CalcTextSize(row_title.c_str()).x;
  const float body_h = std::max({grid_h, fs * 8.f, row_title_w});
  const float total_w = (grid.x - origin.x) + grid_w + legend_w;
  const float total_h = (grid.y - origin.y) + body_h + fs * 0.5f;
  ImGui::InvisibleButton("##heatmap", ImVec2(total_w, total_h));
  ui::register_plot(h.title.empty() ? h.row_title + " x " + h.col_title : h.title, ImGui::GetItemRectMin(),
                    ImGui::GetItemRectMax());
  const bool hovered = ImGui::IsItemHovered();
  const bool clicked = ImGui::IsItemClicked(ImGuiMouseButton_Left);
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const ImU32 text = ImGui::GetColorU32(ImGuiCol_Text);
  const ImU32 muted = ImGui::GetColorU32(ui::kMutedText);

  // Axis titles.
  const std::string col_title = h.col_title + " \xE2\x86\x92";
  dl->AddText(ImVec2(grid.x, origin.y), muted, col_title.c_str());
  ui::add_text_vertical(dl, ImVec2(origin.x, grid.y + std::max(grid_h, row_title_w) * 0.5f + row_title_w * 0.5f),
                        muted, row_title.c_str());

  // Labels: rows on the left (right-aligned), columns above.
  for (int i = 0; i < R; ++i) {
    const float w = ImGui::CalcTextSize(rl[size_t(i)].c_str()).x;
    dl->AddText(ImVec2(grid.x - fs * 0.4f - w, grid.y + cell * float(i) + (cell - line) * 0.5f), text,
                rl[size_t(i)].c_str());
  }
  for (int i = 0; i < C; ++i) {
    const float w = ImGui::CalcTextSize(cl[size_t(i)].c_str()).x;
    if (upright)
      dl->AddText(ImVec2(grid.x + cell * float(i) + (cell - w) * 0.5f, grid.y - fs * 0.4f - line), text,
                  cl[size_t(i)].c_str());
    else
      ui::add_text_vertical(dl, ImVec2(grid.x + cell * float(i) + (cell - line) * 0.5f, grid.y - fs * 0.4f), text,
                            cl[size_t(i)].c_str());
  }

  // Cells.
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) {
      const ImVec2 p0(grid.x + cell * float(c), grid.y + cell * float(r));
      dl->AddRectFilled(p0, ImVec2(p0.x + cell, p0.y + cell), diverging_u32(h.value(r, c) / vmax));
    }
  dl->AddRect(grid, ImVec2(grid.x + grid_w, grid.y + grid_h), ImGui::GetColorU32(ImGuiCol_Border));
  if (!h.mark.empty()) ui::mark_rect(h.mark.c_str(), grid, ImVec2(grid.x + grid_w, grid.y + grid_h));

  // Legend: the scale, symmetric around 0, with its units as the title.
  const ImVec2 legend_pos(grid.x + grid_w + fs, grid.y + line + 4.f);
  draw_diverging_legend(dl, legend_pos, ImVec2(legend_bar, std::max(grid_h, fs * 8.f) - line - 4.f), vmax,
                        h.units.c_str());

  // Hover and click.
  std::optional<HeatmapCell> out;
  if (hovered) {
    const ImVec2 m = ImGui::GetIO().MousePos;
    const int c = int(std::floor((m.x - grid.x) / cell));
    const int r = int(std::floor((m.y - grid.y) / cell));
    if (r >= 0 && c >= 0 && r < R && c < C) {
      const ImVec2 p0(grid.x + cell * float(c), grid.y + cell * float(r));
      dl->AddRect(p0, ImVec2(p0.x + cell, p0.y + cell), IM_COL32(0, 0, 0, 255), 0.f, 0, 2.f);
      ImGui::BeginTooltip();
      if (h.tooltip) {
        h.tooltip(r, c);
      } else {
        ImGui::Text("%s %s", h.row_title.c_str(), label_of(h.row_label, r).c_str());
        ImGui::Text("%s %s", h.col_title.c_str(), label_of(h.col_label, c).c_str());
        ImGui::Text("%s %.4f", h.units.c_str(), double(h.value(r, c)));
      }
      if (!h.click_hint.empty()) ImGui::TextDisabled("%s", h.click_hint.c_str());
      ImGui::EndTooltip();
      if (clicked) out = HeatmapCell{r, c};
    }
  }
  ImGui::PopID();
  return out;
}

// ---- ranked table -------------------------------------------------------------

std::optional<size_t> ranked_table(const char* id, const RankedTable& t, const std::vector<RankedRow>& rows) {
  const ImGuiTableFlags flags = ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerV | ImGuiTableFlags_SizingFixedFit |
                                ImGuiTableFlags_ScrollY;
  const float h = std::min<float>(float(rows.size()) + 1.5f, float(t.max_visible_rows)) *
                  ImGui::GetTextLineHeightWithSpacing();
  const int cols = t.id_column ? 5 : 4;
  if (!ImGui::BeginTable(id, cols, flags, ImVec2(0.f, h))) return std::nullopt;
  ImGui::TableSetupScrollFreeze(0, 1);
  ImGui::TableSetupColumn("#");
  ImGui::TableSetupColumn(t.label_header.c_str());
  if (t.id_column) ImGui::TableSetupColumn("id");
  ImGui::TableSetupColumn(t.value_header.c_str());
  ImGui::TableSetupColumn(t.bar_header.c_str(), ImGuiTableColumnFlags_WidthStretch);
  ImGui::TableHeadersRow();
  std::optional<size_t> clicked;
  for (size_t i = 0; i < rows.size(); ++i) {
    const RankedRow& r = rows[i];
    ImGui::TableNextRow();
    ImGui::TableSetColumnIndex(0);
    ImGui::PushID(int(i));
    if (ImGui::Selectable(ui::fmt("%zu", i + 1).c_str(), false, ImGuiSelectableFlags_SpanAllColumns)) clicked = i;
    if (!t.mark.empty()) ui::mark_item(ui::fmt("%s_%zu", t.mark.c_str(), i).c_str());
    if (t.tooltip && ImGui::IsItemHovered()) {
      ImGui::BeginTooltip();
      t.tooltip(r);
      ImGui::EndTooltip();
    }
    if (t.context_menu && ImGui::BeginPopupContextItem()) {
      t.context_menu(r);
      ImGui::EndPopup();
    }
    ImGui::PopID();
    ImGui::TableSetColumnIndex(1);
    ImGui::TextUnformatted(label_of(t.label, r.id).c_str());
    int col = 2;
    if (t.id_column) {
      ImGui::TableSetColumnIndex(col++);
      ImGui::TextDisabled("%d", r.id);
    }
    ImGui::TableSetColumnIndex(col++);
    ImGui::Text("%.3f", std::abs(r.value) < 0.0005f ? 0.0 : double(r.value));  // no "-0.000"
    ImGui::TableSetColumnIndex(col);
    // Length |bar|; the diverging scale's red for positive bars, its blue for negative ones.
    ui::value_bar(std::abs(r.bar), diverging_u32(r.bar < 0.f ? -0.55f : 0.55f, 0.9f), r.bar_text.c_str());
  }
  ImGui::EndTable();
  return clicked;
}

// ---- text with a Run button ------------------------------------------------------

namespace {

// ImGui's std::string resize protocol for InputTextMultiline.
int resize_string(ImGuiInputTextCallbackData* d) {
  if (d->EventFlag == ImGuiInputTextFlags_CallbackResize) {
    auto* str = static_cast<std::string*>(d->UserData);
    str->resize(size_t(d->BufTextLen));
    d->Buf = str->data();
  }
  return 0;
}

}  // namespace

bool text_with_run(const char* id, TextBoxState& state, const std::string& wanted, float lines, const char* help) {
  if (!state.init || state.source != wanted) {
    state.edit = state.source = wanted;
    state.init = true;
  }
  ImGui::PushID(id);
  const float width = std::min(ImGui::GetContentRegionAvail().x - ImGui::GetFontSize() * 6.f, ImGui::GetFontSize() * 48.f);
  ImGui::InputTextMultiline("##text", state.edit.data(), state.edit.capacity() + 1,
                            ImVec2(std::max(width, ImGui::GetFontSize() * 10.f), ImGui::GetTextLineHeight() * lines),
                            ImGuiInputTextFlags_CallbackResize, resize_string, &state.edit);
  ui::mark_item(ui::fmt("%s_text", id).c_str());
  const bool ctrl_enter = ImGui::IsItemActive() && ImGui::GetIO().KeyCtrl && ImGui::IsKeyPressed(ImGuiKey_Enter);
  ImGui::SameLine();
  const bool run = ImGui::Button("Run") || ctrl_enter;
  ui::mark_item(ui::fmt("%s_run", id).c_str());
  if (help && *help) ui::help_marker(help);
  ImGui::PopID();
  return run;
}

// ---- tokens -------------------------------------------------------------------

void token_chip(const TokenText& tokens, int id) {
  const std::string text = label_of(tokens.display, id);
  const ImVec2 pad(4.f, 1.f);
  const ImVec2 size = ImGui::CalcTextSize(text.c_str());
  const ImVec2 p = ImGui::GetCursorScreenPos();
  ImGui::Dummy(ImVec2(size.x + 2 * pad.x, size.y + 2 * pad.y));
  ImDrawList* dl = ImGui::GetWindowDrawList();
  dl->AddRectFilled(p, ImVec2(p.x + size.x + 2 * pad.x, p.y + size.y + 2 * pad.y),
                    ImGui::GetColorU32(ImGuiCol_FrameBg), 3.f);
  dl->AddText(ImVec2(p.x + pad.x, p.y + pad.y), ImGui::GetColorU32(ImGuiCol_Text), text.c_str());
  if (tokens.tooltip && ImGui::IsItemHovered()) {
    ImGui::BeginTooltip();
    tokens.tooltip(id);
    ImGui::EndTooltip();
  }
}

bool token_picker(const char* id, const char* hint, TokenPickerState& p, uint64_t generation,
                  const FindTokens& find, const TokenText& tokens, int* picked) {
  ImGui::PushID(id);
  bool chosen = false;
  ImGui::SetNextItemWidth(std::min(ImGui::GetContentRegionAvail().x, ImGui::GetFontSize() * 22.f));
  const bool enter = ImGui::InputTextWithHint("##query", hint, p.query, sizeof p.query,
                                              ImGuiInputTextFlags_EnterReturnsTrue);
  ui::mark_item((std::string(id) + "_query").c_str());
  if (ImGui::IsItemEdited() || p.generation != generation) {
    p.ids.clear();
    p.note.clear();
    if (find && p.query[0] != '\0') find(p.query, p.ids, p.note);
    p.generation = generation;
  }
  if (enter && !p.ids.empty()) {
    *picked = p.ids.front();
    chosen = true;
  }
  if (p.query[0] != '\0') {
    if (!p.note.empty()) {
      ImGui::SameLine();
      ImGui::TextDisabled("%s", p.note.c_str());
    }
    const size_t shown = std::min<size_t>(p.ids.size(), 48);
    for (size_t i = 0; i < shown; ++i) {
      const int t = p.ids[i];
      if (i > 0) ImGui::SameLine();
      if (ImGui::GetContentRegionAvail().x < ImGui::GetFontSize() * 3.f) ImGui::NewLine();
      ImGui::PushID(int(i));
      if (ImGui::SmallButton(label_of(tokens.display, t).c_str())) {
        *picked = t;
        chosen = true;
      }
      if (ImGui::IsItemHovered()) {
        ImGui::BeginTooltip();
        if (tokens.tooltip) tokens.tooltip(t);
        ImGui::TextDisabled("click to choose");
        ImGui::EndTooltip();
      }
      ImGui::PopID();
    }
    if (p.ids.size() > shown) ImGui::TextDisabled("... %zu more", p.ids.size() - shown);
  }
  ImGui::PopID();
  return chosen;
}

bool token_id_input(const char* label, int* id, int n) {
  ImGui::SetNextItemWidth(ImGui::GetFontSize() * 8.f);
  int v = *id;
  if (ImGui::InputInt(label, &v, 1, 100)) {
    v = std::clamp(v, 0, std::max(0, n - 1));
    if (v != *id) {
      *id = v;
      return true;
    }
  }
  return false;
}

// ---- freshness and progress ---------------------------------------------------

Faded::Faded(bool on) : on_(on) {
  if (on_) ImGui::PushStyleVar(ImGuiStyleVar_Alpha, ImGui::GetStyle().Alpha * 0.45f);
}
Faded::~Faded() {
  if (on_) ImGui::PopStyleVar();
}

bool progress_line(const char* id, const std::string& text, float progress, const std::string& overlay) {
  ImGui::PushID(id);
  ImGui::PushStyleColor(ImGuiCol_Text, ui::kAccentText);
  ImGui::TextUnformatted(text.c_str());
  ImGui::PopStyleColor();
  const float cancel_w = ImGui::CalcTextSize("Cancel").x + ImGui::GetStyle().FramePadding.x * 2.f;
  ImGui::ProgressBar(std::clamp(progress, 0.f, 1.f),
                     ImVec2(ImGui::GetContentRegionAvail().x - cancel_w - ImGui::GetStyle().ItemSpacing.x, 0.f),
                     overlay.empty() ? ui::fmt("%d%%", int(progress * 100.f)).c_str() : overlay.c_str());
  ImGui::SameLine();
  const bool cancel = ImGui::Button("Cancel");
  ui::mark_item((std::string("cancel_") + id).c_str());
  ImGui::PopID();
  return cancel;
}

// ---- eigenvalues in the complex plane ------------------------------------------

bool eigen_plot(const char* id, const EigenPlot& p) {
  const float fs = ImGui::GetFontSize();
  const float side = p.size > 0.f ? p.size : fs * 12.f;
  ImGui::PushID(id);
  const ImVec2 o = ImGui::GetCursorScreenPos();
  ImGui::InvisibleButton("##eigen", ImVec2(side, side));
  if (p.labels && !p.title.empty()) ui::register_plot(p.title, ImGui::GetItemRectMin(), ImGui::GetItemRectMax());
  const bool clicked = ImGui::IsItemClicked(ImGuiMouseButton_Left);
  const bool hovered = ImGui::IsItemHovered();
  if (!p.mark.empty()) ui::mark_item(p.mark.c_str());
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const ImVec2 c(o.x + side * 0.5f, o.y + side * 0.5f);
  const float radius = side * 0.42f;
  double scale = 0;
  for (const auto& z : p.values) scale = std::max(scale, std::abs(z));
  const ImU32 axis = ImGui::GetColorU32(ImGuiCol_Border);
  const ImU32 text = ImGui::GetColorU32(ImGuiCol_TextDisabled);
  dl->AddRectFilled(o, ImVec2(o.x + side, o.y + side), ImGui::GetColorU32(ImGuiCol_FrameBg), 3.f);
  dl->AddLine(ImVec2(o.x + 2.f, c.y), ImVec2(o.x + side - 2.f, c.y), axis);
  dl->AddLine(ImVec2(c.x, o.y + 2.f), ImVec2(c.x, o.y + side - 2.f), axis);
  dl->AddCircle(c, radius, axis, 48);
  if (p.labels) {
    const std::string s = scale > 0 ? ui::fmt("|\xCE\xBB| = %.3g", scale) : std::string("all 0");
    dl->AddText(ImVec2(c.x + radius * 0.72f, o.y + 1.f), text, s.c_str());
    dl->AddText(ImVec2(o.x + side - ImGui::CalcTextSize("Re").x - 2.f, c.y + 1.f), text, "Re");
    dl->AddText(ImVec2(c.x + 3.f, o.y + side - fs - 1.f), text, "Im");
  }
  const float dot = std::max(2.f, side / 60.f);
  for (const auto& z : p.values) {
    if (scale <= 0) break;
    const float x = c.x + float(z.real() / scale) * radius;
    const float y = c.y - float(z.imag() / scale) * radius;
    const float t = z.real() > 0 ? 0.85f : z.real() < 0 ? -0.85f : 0.f;
    dl->AddCircleFilled(ImVec2(x, y), dot, diverging_u32(t));
    dl->AddCircle(ImVec2(x, y), dot, IM_COL32(0, 0, 0, 140));
  }
  if (hovered) {
    ImGui::BeginTooltip();
    if (!p.title.empty()) ImGui::TextUnformatted(p.title.c_str());
    double re = 0, mag = 0;
    int positive = 0;
    for (const auto& z : p.values) {
      re += z.real();
      mag += std::abs(z);
      if (z.real() > 0) ++positive;
    }
    ImGui::Text("%zu eigenvalues, %d with a positive real part", p.values.size(), positive);
    if (mag > 0) ImGui::Text("sum Re(\xCE\xBB) / sum |\xCE\xBB| = %.3f", re / mag);
    ImGui::Text("circle: the largest |\xCE\xBB| = %.4g", scale);
    ImGui::EndTooltip();
  }
  ImGui::PopID();
  return clicked;
}

namespace {
// A plot's box [b0, b1] with its background and border, the ranges written at
// the ends of each axis and the axis titles in the middle (the y title
// vertical, at x = left); the scatter and line plots share it.
void plot_box(ImDrawList* dl, ImVec2 b0, ImVec2 b1, float left, float xmin, float xmax, float ymin, float ymax,
              const std::string& x_title, const std::string& y_title) {
  const float fs = ImGui::GetFontSize();
  const ImU32 text = ImGui::GetColorU32(ImGuiCol_Text);
  const ImU32 dim = ImGui::GetColorU32(ImGuiCol_TextDisabled);
  dl->AddRectFilled(b0, b1, ImGui::GetColorU32(ImGuiCol_FrameBg), 3.f);
  dl->AddRect(b0, b1, ImGui::GetColorU32(ImGuiCol_Border), 3.f);
  const std::string x0 = ui::fmt("%g", xmin), x1 = ui::fmt("%g", xmax);
  const std::string y0 = ui::fmt("%g", ymin), y1 = ui::fmt("%g", ymax);
  dl->AddText(ImVec2(b0.x, b1.y + 2.f), dim, x0.c_str());
  dl->AddText(ImVec2(b1.x - ImGui::CalcTextSize(x1.c_str()).x, b1.y + 2.f), dim, x1.c_str());
  dl->AddText(ImVec2(b0.x + (b1.x - b0.x - ImGui::CalcTextSize(x_title.c_str()).x) * 0.5f, b1.y + fs * 1.1f), text,
              x_title.c_str());
  dl->AddText(ImVec2(b0.x - ImGui::CalcTextSize(y0.c_str()).x - 3.f, b1.y - fs), dim, y0.c_str());
  dl->AddText(ImVec2(b0.x - ImGui::CalcTextSize(y1.c_str()).x - 3.f, b0.y), dim, y1.c_str());
  ui::add_text_vertical(dl, ImVec2(left, b0.y + (b1.y - b0.y + ImGui::CalcTextSize(y_title.c_str()).x) * 0.5f), text,
                        y_title.c_str());
}
}  // namespace

std::optional<size_t> scatter_plot(const char* id, const Scatter& s) {
  const float fs = ImGui::GetFontSize();
  const float side = s.size > 0.f ? s.size : fs * 18.f;
  const float left = fs * 2.2f, bottom = fs * 2.2f;  // room for the axis titles and ranges
  ImGui::PushID(id);
  const ImVec2 o = ImGui::GetCursorScreenPos();
  ImGui::InvisibleButton("##scatter", ImVec2(side + left, side + bottom));
  ui::register_plot(s.title.empty() ? s.y_title + " against " + s.x_title : s.title, ImGui::GetItemRectMin(),
                    ImGui::GetItemRectMax());
  const bool clicked = ImGui::IsItemClicked(ImGuiMouseButton_Left);
  const bool hovered = ImGui::IsItemHovered();
  if (!s.mark.empty()) ui::mark_item(s.mark.c_str());
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const ImVec2 b0(o.x + left, o.y), b1(o.x + left + side, o.y + side);  // the plot box
  const ImU32 axis = ImGui::GetColorU32(ImGuiCol_Border);
  const ImU32 text = ImGui::GetColorU32(ImGuiCol_Text);
  plot_box(dl, b0, b1, o.x, s.xmin, s.xmax, s.ymin, s.ymax, s.x_title, s.y_title);
  auto px = [&](float x) { return b0.x + (x - s.xmin) / std::max(1e-12f, s.xmax - s.xmin) * side; };
  auto py = [&](float y) { return b1.y - (y - s.ymin) / std::max(1e-12f, s.ymax - s.ymin) * side; };
  if (s.xmin < 0.f && s.xmax > 0.f) dl->AddLine(ImVec2(px(0.f), b0.y), ImVec2(px(0.f), b1.y), axis);
  if (s.ymin < 0.f && s.ymax > 0.f) dl->AddLine(ImVec2(b0.x, py(0.f)), ImVec2(b1.x, py(0.f)), axis);
  // Points, and the one nearest the mouse (within a few pixels).
  const float dot = std::max(3.f, side / 70.f);
  const ImVec2 mouse = ImGui::GetIO().MousePos;
  std::optional<size_t> near;
  float best = (dot * 2.5f) * (dot * 2.5f);
  for (size_t i = 0; i < s.points.size(); ++i) {
    const ScatterPoint& p = s.points[i];
    const ImVec2 c(px(std::clamp(p.x, s.xmin, s.xmax)), py(std::clamp(p.y, s.ymin, s.ymax)));
    dl->AddCircleFilled(c, dot, diverging_u32(p.color * 0.85f));
    dl->AddCircle(c, dot, IM_COL32(0, 0, 0, 160));
    if (!p.label.empty()) dl->AddText(ImVec2(c.x + dot + 2.f, c.y - fs * 0.5f), text, p.label.c_str());
    const float d2 = (mouse.x - c.x) * (mouse.x - c.x) + (mouse.y - c.y) * (mouse.y - c.y);
    if (hovered && d2 < best) {
      best = d2;
      near = i;
    }
  }
  if (near) {
    ImGui::BeginTooltip();
    if (s.tooltip) {
      s.tooltip(*near);
    } else {
      const ScatterPoint& p = s.points[*near];
      ImGui::Text("%s: %s %.3f, %s %.3f", p.label.c_str(), s.x_title.c_str(), double(p.x), s.y_title.c_str(), double(p.y));
    }
    ImGui::EndTooltip();
  }
  ImGui::PopID();
  if (clicked && near) return near;
  return std::nullopt;
}

uint32_t series_color(size_t i) {
  static const ImU32 palette[] = {IM_COL32(31, 119, 180, 255),  IM_COL32(255, 127, 14, 255),
                                  IM_COL32(44, 160, 44, 255),   IM_COL32(214, 39, 40, 255),
                                  IM_COL32(148, 103, 189, 255), IM_COL32(140, 86, 75, 255),
                                  IM_COL32(227, 119, 194, 255), IM_COL32(127, 127, 127, 255),
                                  IM_COL32(188, 189, 34, 255),  IM_COL32(23, 190, 207, 255)};
  return palette[i % (sizeof(palette) / sizeof(palette[0]))];
}

void line_plot(const char* id, const LinePlot& p) {
  const float fs = ImGui::GetFontSize();
  const float w = p.width > 0.f ? p.width : std::min(ImGui::GetContentRegionAvail().x, fs * 40.f);
  const float h = p.height > 0.f ? p.height : fs * 9.f;
  const float left = fs * 3.2f, bottom = fs * 2.2f;
  ImGui::PushID(id);
  const ImVec2 o = ImGui::GetCursorScreenPos();
  ImGui::InvisibleButton("##lines", ImVec2(std::max(w, left + fs * 4.f), h + bottom));
  ui::register_plot(p.title.empty() ? p.y_title + " against " + p.x_title : p.title, ImGui::GetItemRectMin(),
                    ImGui::GetItemRectMax());
  const bool hovered = ImGui::IsItemHovered();
  if (!p.mark.empty()) ui::mark_item(p.mark.c_str());
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const ImVec2 b0(o.x + left, o.y), b1(o.x + std::max(w, left + fs * 4.f), o.y + h);
  const float bw = b1.x - b0.x, bh = b1.y - b0.y;
  const ImU32 axis = ImGui::GetColorU32(ImGuiCol_Border);
  const ImU32 text = ImGui::GetColorU32(ImGuiCol_Text);
  plot_box(dl, b0, b1, o.x, p.xmin, p.xmax, p.ymin, p.ymax, p.x_title, p.y_title);
  const float xs = std::max(1e-12f, p.xmax - p.xmin), ys = std::max(1e-12f, p.ymax - p.ymin);
  auto px = [&](float x) { return b0.x + (std::clamp(x, p.xmin, p.xmax) - p.xmin) / xs * bw; };
  auto py = [&](float y) { return b1.y - (std::clamp(y, p.ymin, p.ymax) - p.ymin) / ys * bh; };
  if (p.ymin < 0.f && p.ymax > 0.f) dl->AddLine(ImVec2(b0.x, py(0.f)), ImVec2(b1.x, py(0.f)), axis);
  dl->PushClipRect(b0, b1, true);
  for (float m : p.markers) {
    const float x = px(m);
    dl->AddLine(ImVec2(x, b0.y), ImVec2(x, b1.y), IM_COL32(230, 160, 60, 230), 2.f);
    if (!p.marker_label.empty()) dl->AddText(ImVec2(x + 3.f, b0.y + 2.f), IM_COL32(230, 160, 60, 255), p.marker_label.c_str());
  }
  std::vector<ImVec2> pts;
  for (size_t i = 0; i < p.series.size(); ++i) {
    const LineSeries& s = p.series[i];
    const ImU32 col = s.color ? s.color : series_color(i);
    const size_t n = std::min(s.x.size(), s.y.size());
    // At most ~2 points per pixel: a long series is thinned by striding.
    const size_t stride = std::max<size_t>(1, n / size_t(std::max(1.f, bw * 2.f)));
    pts.clear();
    for (size_t k = 0; k < n; k += stride) pts.emplace_back(px(s.x[k]), py(s.y[k]));
    if (n > 0 && (n - 1) % stride != 0) pts.emplace_back(px(s.x[n - 1]), py(s.y[n - 1]));
    if (pts.size() == 1) dl->AddCircleFilled(pts[0], s.width + 1.f, col);
    if (pts.size() >= 2) dl->AddPolyline(pts.data(), int(pts.size()), col, ImDrawFlags_None, s.width);
  }
  dl->PopClipRect();
  // Legend: a coloured dash and the label of each named line, wrapping.
  float lx = b0.x;
  const float ly = b1.y + bottom;
  float row = 0.f;
  for (size_t i = 0; i < p.series.size(); ++i) {
    const LineSeries& s = p.series[i];
    if (s.label.empty()) continue;
    const float tw = ImGui::CalcTextSize(s.label.c_str()).x + fs * 1.6f;
    if (lx + tw > b1.x && lx > b0.x) {
      lx = b0.x;
      row += fs * 1.2f;
    }
    const ImU32 col = s.color ? s.color : series_color(i);
    dl->AddLine(ImVec2(lx, ly + row + fs * 0.55f), ImVec2(lx + fs, ly + row + fs * 0.55f), col, 3.f);
    dl->AddText(ImVec2(lx + fs * 1.2f, ly + row), text, s.label.c_str());
    lx += tw;
  }
  ImGui::Dummy(ImVec2(b1.x - o.x, row + fs * 1.3f));
  if (hovered) {
    const float mx = p.xmin + (ImGui::GetIO().MousePos.x - b0.x) / bw * xs;
    ImGui::BeginTooltip();
    ImGui::Text("%s %.0f", p.x_title.c_str(), double(mx));
    for (size_t i = 0; i < p.series.size(); ++i) {
      const LineSeries& s = p.series[i];
      const size_t n = std::min(s.x.size(), s.y.size());
      if (s.label.empty() || n == 0) continue;
      const size_t k = size_t(std::lower_bound(s.x.begin(), s.x.begin() + ptrdiff_t(n), mx) - s.x.begin());
      const size_t at = std::min(k, n - 1);
      ImGui::TextColored(ImGui::ColorConvertU32ToFloat4(s.color ? s.color : series_color(i)), "%s: %.3f (at %.0f)",
                         s.label.c_str(), double(s.y[at]), double(s.x[at]));
    }
    ImGui::EndTooltip();
  }
  ImGui::PopID();
}

}  // namespace cs::app::widgets
