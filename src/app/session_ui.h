// The widget kit's inputs taken from the Session (page build only): how the
// shown model's tokens read, finding tokens from text, and a job's progress
// line with Cancel.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "app/session.h"
#include "app/widgets.h"
#include "core/vocab_matrix.h"

namespace cs::app::session_ui {

// Tooltip body for a token (display, id, vocabulary string).
void token_tooltip(const Session& s, int id);
// The shown model's tokens for the widgets.
widgets::TokenText token_text(const Session& s);
// Session::find_tokens for the token picker.
widgets::FindTokens find_tokens(const Session& s);
// "computing the <label>..." with a progress bar and Cancel (which cancels the
// job) while the job in `slot` runs past its first frame; returns true while
// the job runs (also in its first frame, when nothing is drawn: no flicker).
bool job_progress(Session& s, const char* slot);
// The shown model for a view, or nullptr after explaining why there is
// nothing to show ("Load a model to <what>.", or, with needs_layers, that the
// model has no attention layers); when there is one, the line saying whether
// the numbers come from the processed or the raw weights.
const LoadedModel* shown_for_view(const Session& s, const char* what, bool needs_layers);

// Head badges (Session::badges(), core/head_badges.h): small coloured tags
// "prev", "induction", "copying" drawn on the current line after the last
// item (nothing before the badges are computed). Each is reported in "rects"
// as "badge_<where>_<kind>_<L.H>" (kind: previous_token, induction, copying).
void head_badges(const Session& s, int layer, int head, const char* where);
// The badges as words for a tooltip or a label: "previous token, induction" ("" for none).
std::string head_badge_text(const Session& s, int layer, int head);
// A tooltip line "1.4: induction, copying head" (nothing for a head without badges).
void head_badge_line(const Session& s, int layer, int head);

// One column of a circuit explorer (the Head and Virtual heads views): a token
// picker and id box choosing a row or column of a vocab x vocab circuit, and
// the ranked list it gives (its top entries, bars relative to the largest
// |value|). Clicking a listed token calls follow(id).
struct CircuitExplorer {
  const char* id = "";          // ImGui id and the table's name
  const char* pick_label = "";  // e.g. "Source token (attended to)"
  widgets::TokenPickerState* picker = nullptr;
  int selected = 0;             // the token chosen now
  int n = 0;                    // its bound (d_vocab or d_vocab_out)
  std::function<void(int)> select;
  const char* list_title = "";  // e.g. "Outputs it raises most"
  const std::vector<IdValue>* list = nullptr;  // nullptr: none yet
  bool faded = false;           // the list belongs to another input (Freshness::faded)
  const char* slot = "";        // the job computing it (its progress line)
  const char* label_header = "";
  const char* value_header = "";
  std::function<void(int)> follow;
};
void circuit_explorer(Session& s, const CircuitExplorer& e);
// left() and right() side by side in a two-column table when the window is
// wide enough, else one under the other.
void side_by_side(const char* table_id, const std::function<void()>& left, const std::function<void()>& right);

}  // namespace cs::app::session_ui
