// The widget kit's inputs taken from the Session (page build only): how the
// shown model's tokens read, finding tokens from text, and a job's progress
// line with Cancel.
#pragma once
#include <string>

#include "app/session.h"
#include "app/widgets.h"

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

}  // namespace cs::app::session_ui
