#include "app/ui.h"

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <new>

#include "imgui_internal.h"  // ImTextCharFromUtf8

namespace cs::app::ui {

namespace {
ImFont* g_body = nullptr;
ImFont* g_heading = nullptr;
}  // namespace

void set_fonts(ImFont* body, ImFont* heading) {
  g_body = body;
  g_heading = heading;
}
ImFont* heading_font() { return g_heading ? g_heading : ImGui::GetFont(); }

void heading(const char* text) {
  ImGui::PushFont(heading_font());
  ImGui::PushTextWrapPos(0.f);
  ImGui::TextUnformatted(text);
  ImGui::PopTextWrapPos();
  ImGui::PopFont();
}

void explain(const char* text) {
  ImGui::PushStyleColor(ImGuiCol_Text, kMutedText);
  ImGui::TextWrapped("%s", text);
  ImGui::PopStyleColor();
}

void help_marker(const char* text) {
  ImGui::SameLine();
  ImGui::TextDisabled("(?)");
  if (ImGui::IsItemHovered()) {
    ImGui::BeginTooltip();
    ImGui::PushTextWrapPos(ImGui::GetFontSize() * 32.f);
    ImGui::TextUnformatted(text);
    ImGui::PopTextWrapPos();
    ImGui::EndTooltip();
  }
}

std::string thousands(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

std::string si(double n) {
  const char* suffix[] = {"", "k", "M", "B"};
  int i = 0;
  while (std::abs(n) >= 1000.0 && i < 3) {
    n /= 1000.0;
    ++i;
  }
  return i == 0 ? fmt("%.0f", n) : fmt("%.3g%s", n, suffix[i]);
}

std::string fmt(const char* format, ...) {
  va_list args;
  va_start(args, format);
  char buf[512];
  int n = std::vsnprintf(buf, sizeof buf, format, args);
  va_end(args);
  if (n < 0) return {};
  if (size_t(n) < sizeof buf) return std::string(buf, size_t(n));
  std::string out(size_t(n) + 1, '\0');
  va_start(args, format);
  std::vsnprintf(out.data(), out.size(), format, args);
  va_end(args);
  out.resize(size_t(n));
  return out;
}

void value_bar(float fraction, uint32_t color, const char* label) {
  fraction = std::clamp(std::isfinite(fraction) ? fraction : 0.f, 0.f, 1.f);
  const float w = std::max(ImGui::GetContentRegionAvail().x, 20.f);
  const float h = ImGui::GetTextLineHeight();
  const ImVec2 p = ImGui::GetCursorScreenPos();
  ImGui::Dummy(ImVec2(w, h));
  ImDrawList* dl = ImGui::GetWindowDrawList();
  dl->AddRectFilled(p, ImVec2(p.x + w, p.y + h), ImGui::GetColorU32(ImGuiCol_FrameBg), 2.f);
  dl->AddRectFilled(p, ImVec2(p.x + w * fraction, p.y + h), color, 2.f);
  dl->AddText(ImVec2(p.x + 4.f, p.y), ImGui::GetColorU32(ImGuiCol_Text), label);
}

namespace {
std::map<std::string, ImVec4> g_marked;
}  // namespace

void mark_item(const char* name) { mark_rect(name, ImGui::GetItemRectMin(), ImGui::GetItemRectMax()); }

void mark_rect(const char* name, ImVec2 min, ImVec2 max) { g_marked[name] = ImVec4(min.x, min.y, max.x, max.y); }

const std::map<std::string, ImVec4>& marked_items() { return g_marked; }

namespace {
std::vector<PlotRect> g_plots;
uint64_t g_plot_frame = 0;
struct Capture {
  std::string title, file_name;
  uint64_t asked_in = 0;
};
std::optional<Capture> g_capture;
}  // namespace

void register_plot(const std::string& title, ImVec2 min, ImVec2 max) {
  // Two plots of one title in a frame (the Composition view's three heatmaps share their axes): numbered.
  std::string t = title;
  for (int n = 2; std::any_of(g_plots.begin(), g_plots.end(), [&](const PlotRect& p) { return p.title == t; }); ++n)
    t = title + " (" + std::to_string(n) + ")";
  mark_rect(("plot_" + std::to_string(g_plots.size())).c_str(), min, max);  // tests find it as the menu lists it
  const ImDrawList* dl = ImGui::GetWindowDrawList();
  const ImVec2 c0 = dl->GetClipRectMin(), c1 = dl->GetClipRectMax();
  const ImVec4 visible(std::max(min.x, c0.x), std::max(min.y, c0.y), std::min(max.x, c1.x), std::min(max.y, c1.y));
  // The plot whose picture is wanted, partly scrolled away: bring its top into view.
  if (g_capture && g_capture->title == t && (visible.y > min.y + 0.5f || visible.w < max.y - 0.5f))
    ImGui::SetScrollFromPosY(min.y - ImGui::GetWindowPos().y - ImGui::GetStyle().ItemSpacing.y, 0.f);
  g_plots.push_back(PlotRect{t, ImVec4(min.x, min.y, max.x, max.y), visible});
}
namespace {
bool g_fail_next_view_draw = false;
}  // namespace
void fail_next_view_draw() { g_fail_next_view_draw = true; }
void view_drawn() {
  if (!g_fail_next_view_draw) return;
  g_fail_next_view_draw = false;
  throw std::bad_alloc();
}

void begin_frame() {
  g_marked.clear();
  g_plots.clear();
  ++g_plot_frame;
}
const std::vector<PlotRect>& frame_plots() { return g_plots; }
void request_capture(const std::string& title, const std::string& file_name) {
  g_capture = Capture{title, file_name, g_plot_frame};
}
bool capture_pending() { return g_capture.has_value(); }
std::optional<std::pair<PlotRect, std::string>> take_capture() {
  if (!g_capture || g_plot_frame <= g_capture->asked_in + 1) return std::nullopt;  // the menu was still open
  for (const PlotRect& p : g_plots)
    if (p.title == g_capture->title) {
      const bool whole = p.visible.y <= p.rect.y + 0.5f && p.visible.w >= p.rect.w - 0.5f;
      if (!whole && g_plot_frame <= g_capture->asked_in + 8) return std::nullopt;  // still scrolling to it
      PlotRect shown = p;
      shown.rect = p.visible;
      auto out = std::make_pair(shown, g_capture->file_name);
      g_capture.reset();
      return out;
    }
  if (g_plot_frame > g_capture->asked_in + 30) g_capture.reset();  // the plot is gone (another tab, a new model)
  return std::nullopt;
}

void add_text_vertical(ImDrawList* dl, ImVec2 pos, uint32_t col, const char* text) {
  ImFont* font = ImGui::GetFont();
  const float scale = ImGui::GetFontSize() / font->FontSize;
  const char* s = text;
  const char* end = text + std::strlen(text);
  float pen = 0.f;  // distance along the reading direction (upwards on screen)
  while (s < end) {
    unsigned int c = 0;
    int n = ImTextCharFromUtf8(&c, s, end);
    s += n > 0 ? n : 1;
    const ImFontGlyph* g = font->FindGlyph(ImWchar(c));
    if (!g) continue;
    if (g->Visible) {
      // Unrotated glyph box relative to pos: x in [pen+X0, pen+X1], y in [Y0, Y1] (y down).
      // A 90-degree counter-clockwise turn maps (dx, dy) to (dy, -dx).
      const float x0 = pen + g->X0 * scale, x1 = pen + g->X1 * scale;
      const float y0 = g->Y0 * scale, y1 = g->Y1 * scale;
      dl->PrimReserve(6, 4);
      dl->PrimQuadUV(ImVec2(pos.x + y0, pos.y - x0), ImVec2(pos.x + y0, pos.y - x1), ImVec2(pos.x + y1, pos.y - x1),
                     ImVec2(pos.x + y1, pos.y - x0), ImVec2(g->U0, g->V0), ImVec2(g->U1, g->V0),
                     ImVec2(g->U1, g->V1), ImVec2(g->U0, g->V1), col);
    }
    pen += g->AdvanceX * scale;
  }
}

}  // namespace cs::app::ui
