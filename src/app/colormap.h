// The diverging colour scale every view uses for signed values: blue for
// negative, white at zero, red for positive (ColorBrewer RdBu, which stays
// distinguishable with the common forms of colour blindness). The scale is
// symmetric around 0: t = value / vmax in [-1, 1].
#pragma once
#include <cstdint>

struct ImDrawList;
struct ImVec2;

namespace cs::app {

struct Rgb {
  float r, g, b;  // 0..1
};

// Colour of t in [-1, 1] (clamped); -1 = darkest blue, 0 = white, +1 = darkest red.
Rgb diverging(float t);
// The same as ImGui's packed ABGR colour (IM_COL32 layout).
uint32_t diverging_u32(float t, float alpha = 1.f);
// Black or white, whichever reads better on diverging(t).
uint32_t text_on_diverging(float t);

// A vertical colour bar from +vmax (top) to -vmax (bottom) at `pos` with `size`,
// ticks at +vmax, 0, -vmax and `label` above it (e.g. "logit").
void draw_diverging_legend(ImDrawList* dl, const ImVec2& pos, const ImVec2& size, float vmax, const char* label);
// Width the legend needs beside a plot (bar plus tick labels), for a given bar width.
float diverging_legend_width(float bar_width, float vmax);

}  // namespace cs::app
