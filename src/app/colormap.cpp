#include "app/colormap.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string_view>

#include "imgui.h"

namespace cs::app {

namespace {

// ColorBrewer RdBu, 11 classes, from the blue end (t = -1) to the red end (t = +1).
constexpr Rgb kStops[] = {
    {0x05 / 255.f, 0x30 / 255.f, 0x61 / 255.f}, {0x21 / 255.f, 0x66 / 255.f, 0xac / 255.f},
    {0x43 / 255.f, 0x93 / 255.f, 0xc3 / 255.f}, {0x92 / 255.f, 0xc5 / 255.f, 0xde / 255.f},
    {0xd1 / 255.f, 0xe5 / 255.f, 0xf0 / 255.f}, {0xf7 / 255.f, 0xf7 / 255.f, 0xf7 / 255.f},
    {0xfd / 255.f, 0xdb / 255.f, 0xc7 / 255.f}, {0xf4 / 255.f, 0xa5 / 255.f, 0x82 / 255.f},
    {0xd6 / 255.f, 0x60 / 255.f, 0x4d / 255.f}, {0xb2 / 255.f, 0x18 / 255.f, 0x2b / 255.f},
    {0x67 / 255.f, 0x00 / 255.f, 0x1f / 255.f},
};
constexpr int kN = int(sizeof(kStops) / sizeof(kStops[0]));

std::string_view fmt_tick(char* buf, size_t n, float v) {
  int len = std::snprintf(buf, n, "%.3g", double(v));
  return {buf, size_t(std::max(len, 0))};
}

}  // namespace

Rgb diverging(float t) {
  if (!std::isfinite(t)) t = 0.f;
  t = std::clamp(t, -1.f, 1.f);
  float x = (t + 1.f) * 0.5f * float(kN - 1);  // 0 .. kN-1
  int i = std::min(int(x), kN - 2);
  float f = x - float(i);
  const Rgb& a = kStops[i];
  const Rgb& b = kStops[i + 1];
  return {a.r + (b.r - a.r) * f, a.g + (b.g - a.g) * f, a.b + (b.b - a.b) * f};
}

uint32_t diverging_u32(float t, float alpha) {
  Rgb c = diverging(t);
  return ImGui::ColorConvertFloat4ToU32(ImVec4(c.r, c.g, c.b, alpha));
}

uint32_t text_on_diverging(float t) {
  Rgb c = diverging(t);
  float luminance = 0.2126f * c.r + 0.7152f * c.g + 0.0722f * c.b;
  return luminance > 0.5f ? IM_COL32(0, 0, 0, 255) : IM_COL32(255, 255, 255, 255);
}

float diverging_legend_width(float bar_width, float vmax) {
  char buf[32];
  float w = ImGui::CalcTextSize(fmt_tick(buf, sizeof buf, -vmax).data()).x;
  return bar_width + 6.f + w;
}

void draw_diverging_legend(ImDrawList* dl, const ImVec2& pos, const ImVec2& size, float vmax, const char* label) {
  const int steps = 64;
  for (int i = 0; i < steps; ++i) {
    float y0 = pos.y + size.y * float(i) / steps;
    float y1 = pos.y + size.y * float(i + 1) / steps;
    float t = 1.f - 2.f * (float(i) + 0.5f) / steps;  // top = +1
    dl->AddRectFilled(ImVec2(pos.x, y0), ImVec2(pos.x + size.x, y1 + 0.5f), diverging_u32(t));
  }
  const ImU32 text = ImGui::GetColorU32(ImGuiCol_Text);
  dl->AddRect(pos, ImVec2(pos.x + size.x, pos.y + size.y), ImGui::GetColorU32(ImGuiCol_Border));
  const float h = ImGui::GetTextLineHeight();
  char buf[32];
  const float ticks[3] = {vmax, 0.f, -vmax};
  for (int i = 0; i < 3; ++i) {
    float y = pos.y + size.y * float(i) / 2.f;
    dl->AddLine(ImVec2(pos.x + size.x, y), ImVec2(pos.x + size.x + 4.f, y), text);
    dl->AddText(ImVec2(pos.x + size.x + 6.f, y - h * 0.5f), text, fmt_tick(buf, sizeof buf, ticks[i]).data());
  }
  if (label && *label) dl->AddText(ImVec2(pos.x, pos.y - h - 4.f), text, label);
}

}  // namespace cs::app
