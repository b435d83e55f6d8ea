// The views: each draws one part of the page from AppState (one view per file).
#pragma once
#include "app/app_state.h"

namespace cs::app {

void draw_app(AppState& s);           // app_frame.cpp: the whole window, banner, layout
void draw_model_panel(AppState& s);   // model_panel.cpp: open/pick a model, the model card
void draw_bigram_panel(AppState& s);  // bigram_panel.cpp: the direct path W_E W_U

}  // namespace cs::app
