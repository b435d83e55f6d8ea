// ImGui basics of the page: fonts, colours, text helpers, formatting, and the
// rectangles of widgets reported to tests. Nothing here knows the Session or a
// view; the widget kit is widgets.h, the session's token helpers session_ui.h.
#pragma once
#include <cstdint>
#include <map>
#include <string>

#include "imgui.h"

namespace cs::app::ui {

// Fonts, set up by main.cpp at the display's pixel ratio.
void set_fonts(ImFont* body, ImFont* heading);
ImFont* heading_font();

inline const ImVec4 kErrorText{1.00f, 0.45f, 0.42f, 1.f};
inline const ImVec4 kWarningText{1.00f, 0.78f, 0.35f, 1.f};
inline const ImVec4 kMutedText{0.62f, 0.64f, 0.70f, 1.f};
inline const ImVec4 kAccentText{0.55f, 0.80f, 1.00f, 1.f};

// A section title in the heading font.
void heading(const char* text);
// Wrapped text in the muted colour (explanations for students).
void explain(const char* text);
// "(?)" that shows `text` on hover.
void help_marker(const char* text);

// 1234567 -> "1,234,567"; with an SI suffix: 1234567 -> "1.23M".
std::string thousands(int64_t n);
std::string si(double n);
// printf into a std::string.
std::string fmt(const char* format, ...) IM_FMTARGS(1);

// A horizontal bar filling `fraction` (0..1) of the current column, with `label` on top.
void value_bar(float fraction, uint32_t color, const char* label);

// Records the last item's screen rectangle (CSS pixels) under `name`, so tests
// and automation can find widgets (reported by cs_state_json as "rects").
void mark_item(const char* name);
void mark_rect(const char* name, ImVec2 min, ImVec2 max);
const std::map<std::string, ImVec4>& marked_items();  // name -> (x0, y0, x1, y1)

// Adds text rotated 90 degrees counter-clockwise (reading upwards); `pos` is
// where the text's baseline starts (bottom-left corner of the rotated box).
void add_text_vertical(ImDrawList* dl, ImVec2 pos, uint32_t col, const char* text);

}  // namespace cs::app::ui
