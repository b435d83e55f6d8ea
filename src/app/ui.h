// Small widgets shared by the views (each used by more than one view).
#pragma once
#include <cstdint>
#include <map>
#include <string>

#include "app/app_state.h"
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
// "computing the reverse lookup... 40%" while the job in `slot` (AppState's
// job slots) runs past its first frame; returns true while the job runs.
bool job_progress(const AppState& s, const char* slot);
// "(?)" that shows `text` on hover.
void help_marker(const char* text);

// 1234567 -> "1,234,567"; with an SI suffix: 1234567 -> "1.23M".
std::string thousands(int64_t n);
std::string si(double n);
// printf into a std::string.
std::string fmt(const char* format, ...) IM_FMTARGS(1);

// A token shown as the tokenizer displays it (spaces/newlines visible), in a
// framed chip; hover gives its id and vocabulary string.
void token_chip(const AppState& s, int id);
// Tooltip body for a token (display, id, vocabulary string, bytes).
void token_tooltip(const AppState& s, int id);

// A horizontal bar filling `fraction` (0..1) of the current column, with `label` on top.
void value_bar(float fraction, uint32_t color, const char* label);

// Text field to find a token: typing text tokenizes it (or matches one token
// exactly, or "#id" picks an id). Lists the candidates as buttons; returns
// true with *picked set when the user picks one.
struct TokenPicker {
  char query[256] = "";
  TokenMatches matches;
  uint64_t generation = ~uint64_t(0);  // model generation the matches belong to
};
bool token_picker(const char* id, const char* hint, TokenPicker& p, const AppState& s, int* picked);

// Integer input for a token id in [0, n); returns true when changed.
bool token_id_input(const char* label, int* id, int n);

// Records the last item's screen rectangle (CSS pixels) under `name`, so tests
// and automation can find widgets (reported by cs_state_json as "rects").
void mark_item(const char* name);
void mark_rect(const char* name, ImVec2 min, ImVec2 max);
const std::map<std::string, ImVec4>& marked_items();  // name -> (x0, y0, x1, y1)

// Adds text rotated 90 degrees counter-clockwise (reading upwards); `pos` is
// where the text's baseline starts (bottom-left corner of the rotated box).
void add_text_vertical(ImDrawList* dl, ImVec2 pos, uint32_t col, const char* text);

}  // namespace cs::app::ui
