// ImGui basics of the page: fonts, colours, text helpers, formatting, and the
// rectangles of widgets reported to tests. Nothing here knows the Session or a
// view; the widget kit is widgets.h, the session's token helpers session_ui.h.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

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
// and automation can find widgets (reported by cs_state_json as "rects"): the
// widgets drawn in the last frame.
void mark_item(const char* name);
void mark_rect(const char* name, ImVec2 min, ImVec2 max);
const std::map<std::string, ImVec4>& marked_items();  // name -> (x0, y0, x1, y1)

// ---- plots as PNG (the Download menu, app_frame.cpp; main.cpp takes the picture) ----
// A plot drawn this frame, with its whole rectangle (CSS pixels): axes,
// labels and legend.
struct PlotRect {
  std::string title;
  ImVec4 rect;     // x0, y0, x1, y1
  ImVec4 visible;  // the part of it its window shows (not scrolled away)
};
// Called by the widgets that draw plots (heatmaps, scatter plots, labelled eigenvalue plots).
void register_plot(const std::string& title, ImVec2 min, ImVec2 max);
// Starts a frame (Page::draw): the marked rectangles and plots are this frame's.
void begin_frame();
const std::vector<PlotRect>& frame_plots();
// A PNG of the plot `title`, saved as `file_name`: taken after a later frame
// that draws it (no menu over it then, and no hover: main.cpp hides the mouse
// from ImGui while one is pending).
void request_capture(const std::string& title, const std::string& file_name);
bool capture_pending();
// After the frame is rendered: the pending capture's plot (its visible part)
// and file name, once a frame drew all of it (register_plot scrolls it into
// view; a plot taller than its window is taken as far as it shows); gives up
// after 30 frames.
std::optional<std::pair<PlotRect, std::string>> take_capture();

// For the test of a frame that runs out of memory part-way (the bridge's
// cs_test_fail_drawing): the next view drawn throws std::bad_alloc once, from
// inside its tab, child window and ID scope (Page::draw calls view_drawn).
void fail_next_view_draw();
void view_drawn();

// Adds text rotated 90 degrees counter-clockwise (reading upwards); `pos` is
// where the text's baseline starts (bottom-left corner of the rotated box).
void add_text_vertical(ImDrawList* dl, ImVec2 pos, uint32_t col, const char* text);

}  // namespace cs::app::ui
