// The page's frame (page build only): the error banner, the model panel on
// the left and the registered views (view.h) in tabs on the right.
#pragma once
#include "app/app.h"

namespace cs::app {

class Page {
 public:
  void draw(App& app);  // app_frame.cpp: the whole window, banner, layout, tabs

 private:
  void draw_model_panel(App& app);  // model_panel.cpp: open/pick a model, the model card, the report
  void draw_open(Session& s);
};

}  // namespace cs::app
