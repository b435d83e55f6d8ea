// The widget kit every view draws with. It knows nothing of the Session or of
// any view: data comes in as values and callbacks, user actions go out as
// return values. This header has no ImGui types, so a view's header can hold
// widget state natively; widgets.cpp (ImGui) is in the page build only.
#pragma once
#include <complex>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace cs::app::widgets {

// How tokens are shown: display text (spaces and newlines visible), and the
// body of a token's tooltip (ImGui calls; may be empty).
struct TokenText {
  std::function<std::string(int)> display;
  std::function<void(int)> tooltip;
};

// ---- heatmap ------------------------------------------------------------------
// A rows x cols matrix of signed values on the diverging colour scale
// (colormap.h), symmetric around 0, with labelled axes, a legend giving the
// scale and its units, a hover tooltip and click-to-select.
struct HeatmapCell {
  int row = -1, col = -1;
};
struct Heatmap {
  int rows = 0, cols = 0;
  std::function<float(int row, int col)> value;
  std::function<std::string(int)> row_label, col_label;  // e.g. tokens (shortened on the axes)
  std::string row_title = "row", col_title = "column";    // axis titles
  std::string units;      // legend title and tooltip unit, e.g. "logit"
  float vmax = 0.f;       // colours span [-vmax, vmax]; 0: the largest |value| shown
  std::function<void(int row, int col)> tooltip;  // the hovered cell's tooltip body; default: labels and value
  std::string click_hint;  // last tooltip line, e.g. "click: show this pair in the tables"
  std::string mark;        // name of the grid's rectangle in the state JSON's "rects" (tests); empty: none
  std::string title;       // what the Download menu calls it (PNG); default "<row_title> x <col_title>"
};
// Draws it; returns the clicked cell, if any.
std::optional<HeatmapCell> heatmap(const char* id, const Heatmap& h);

// ---- ranked table -------------------------------------------------------------
// Columns: rank, label, id, value, and a bar (its length and text per row).
struct RankedRow {
  int id = 0;
  float value = 0.f;
  float bar = 0.f;        // -1..1: the bar's length |bar| (red when positive, blue when negative)
  std::string bar_text;   // e.g. "12.5%"
};
struct RankedTable {
  std::string label_header = "token", value_header = "value", bar_header;
  std::function<std::string(int id)> label;
  std::function<void(const RankedRow&)> tooltip;       // hover body (ImGui calls); may be empty
  std::function<void(const RankedRow&)> context_menu;  // right-click popup items; may be empty
  size_t max_visible_rows = 16;                        // then it scrolls
  bool id_column = true;                               // false: ids are not tokens (e.g. paths): no id column
  std::string mark;  // each row reported in "rects" as "<mark>_<row index>" (tests); empty: none
};
// Returns the index of the clicked row, if any.
std::optional<size_t> ranked_table(const char* id, const RankedTable& t, const std::vector<RankedRow>& rows);

// ---- token picker -------------------------------------------------------------
// A text field to find a token (what `find` makes of the text: one exact
// token, the text's tokens, "#id") with the candidates as buttons.
struct TokenPickerState {
  char query[256] = "";
  std::vector<int> ids;   // candidates for query
  std::string note;       // how they were found, or why none were
  uint64_t generation = ~uint64_t(0);  // the model generation the candidates belong to
};
using FindTokens = std::function<void(const std::string& query, std::vector<int>& ids, std::string& note)>;
// Returns true with *picked set when the user picks a candidate (a button, or Enter for the first).
// Its text field is reported in "rects" as "<id>_query".
bool token_picker(const char* id, const char* hint, TokenPickerState& p, uint64_t generation,
                  const FindTokens& find, const TokenText& tokens, int* picked);
// Integer input for a token id in [0, n); returns true when changed.
bool token_id_input(const char* label, int* id, int n);
// A token in a framed chip; hover shows its tooltip.
void token_chip(const TokenText& tokens, int id);

// ---- text with a Run button ---------------------------------------------------------
// A multi-line text box holding the user's edits, and Run beside it. The box
// follows `wanted` (the view's selection) whenever that changes from outside
// (a link, a script); the user's edits stay in the box until Run.
struct TextBoxState {
  std::string edit, source;  // the box's text, and the selection text it was last copied from
  bool init = false;
};
// Returns true when Run is clicked (or Ctrl+Enter in the box): the text to use
// is then state.edit. The box is reported in "rects" as "<id>_text", the
// button as "<id>_run"; `lines` is the box's height in text lines.
bool text_with_run(const char* id, TextBoxState& state, const std::string& wanted, float lines, const char* help);

// ---- freshness and progress ---------------------------------------------------
// While alive, what is drawn is faded: a result of an earlier input (stale,
// or pending past its first frame; result.h's Freshness::faded()).
class Faded {
 public:
  explicit Faded(bool on);
  ~Faded();
  Faded(const Faded&) = delete;
  Faded& operator=(const Faded&) = delete;

 private:
  bool on_;
};
// `text` over a progress bar (reading `overlay`, or "40%") and a Cancel button;
// returns true when Cancel was clicked. The button is reported in "rects" as "cancel_<id>".
bool progress_line(const char* id, const std::string& text, float progress, const std::string& overlay = {});

// ---- eigenvalues in the complex plane ------------------------------------------
// Scaled to the largest modulus, drawn as a circle with its value written
// beside it (so students read the scale), with the real and imaginary axes.
// Points with a positive real part are red, negative blue (the diverging
// scale's ends): a copying head's are mostly red.
struct EigenPlot {
  std::vector<std::complex<double>> values;
  float size = 0.f;         // side in pixels; 0: 12 font heights
  bool labels = true;       // axis names and the scale circle's value (off for the small grid plots)
  std::string title;        // tooltip heading, e.g. "OV eigenvalues of head 0.3"
  std::string mark;         // name in the state JSON's "rects" (tests); empty: none
};
// Draws it; returns true when clicked.
bool eigen_plot(const char* id, const EigenPlot& p);

// ---- scatter plot ---------------------------------------------------------------
// Labelled points in a box with both axes titled and their ranges written at
// the ends, a reference line at 0 on each axis, and the hovered point's tooltip.
struct ScatterPoint {
  float x = 0.f, y = 0.f;
  std::string label;  // written beside the point (e.g. a head, "1.3")
  float color = 0.f;  // -1..1 on the diverging scale (0: grey)
};
struct Scatter {
  std::vector<ScatterPoint> points;
  float xmin = -1.f, xmax = 1.f, ymin = -1.f, ymax = 1.f;
  std::string x_title, y_title;
  float size = 0.f;                              // side in pixels; 0: 18 font heights
  std::function<void(size_t)> tooltip;           // the hovered point's tooltip body; default: label, x, y
  std::string mark;                              // name in the state JSON's "rects" (tests); empty: none
  std::string title;  // what the Download menu calls it (PNG); default "<y_title> against <x_title>"
};
// Draws it; returns the clicked point's index, if any.
std::optional<size_t> scatter_plot(const char* id, const Scatter& s);

// ---- line plot -------------------------------------------------------------------
// Lines over a shared x axis in a box with both axes titled and their ranges
// written at the ends, optional vertical markers (e.g. the phase change), a
// legend under the box, and a tooltip with each line's value nearest the
// mouse's x.
struct LineSeries {
  std::string label;      // legend and tooltip; "" keeps it out of both
  std::vector<float> x, y;
  uint32_t color = 0;     // packed RGBA as ImGui packs it (IM_COL32); 0: series_color(index)
  float width = 1.5f;
};
struct LinePlot {
  std::vector<LineSeries> series;
  float xmin = 0.f, xmax = 1.f, ymin = 0.f, ymax = 1.f;
  std::string x_title, y_title;
  std::vector<float> markers;  // x positions drawn as vertical lines
  std::string marker_label;    // written beside each marker
  float width = 0.f, height = 0.f;  // pixels; 0: the available width (at most 40 font heights), 9 font heights
  std::string title;  // what the Download menu calls it (PNG); default "<y_title> against <x_title>"
  std::string mark;   // name in the state JSON's "rects" (tests); empty: none
};
// A colour for the i-th line of a plot (a categorical palette, distinct for the first 8).
uint32_t series_color(size_t i);
void line_plot(const char* id, const LinePlot& p);

}  // namespace cs::app::widgets
