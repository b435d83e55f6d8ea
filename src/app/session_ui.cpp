// The Session's tokens and jobs for the widget kit (session_ui.h).
#include "app/session_ui.h"

#include <string>

#include "app/ui.h"
#include "imgui.h"
#include "io/tokenizer.h"

namespace cs::app::session_ui {

void token_tooltip(const Session& s, int id) {
  ImGui::Text("token %s", s.token_display(id).c_str());
  ImGui::TextDisabled("id %d", id);
  const LoadedModel* m = s.shown();
  if (m && m->tokenizer)
    ImGui::TextDisabled("vocabulary string: %s", visible_bytes(m->tokenizer->token_string(id)).c_str());
}

widgets::TokenText token_text(const Session& s) {
  return widgets::TokenText{[&s](int id) { return s.token_display(id); },
                            [&s](int id) { token_tooltip(s, id); }};
}

widgets::FindTokens find_tokens(const Session& s) {
  return [&s](const std::string& query, std::vector<int>& ids, std::string& note) {
    TokenMatches m = s.find_tokens(query);
    ids = std::move(m.ids);
    note = std::move(m.note);
  };
}

bool job_progress(Session& s, const char* slot) {
  const JobRunner::Info* j = s.jobs().info(slot);
  if (!j) return false;
  if (j->frames == 0) return true;
  if (widgets::progress_line(slot, "computing the " + j->label + "...", j->progress)) s.jobs().cancel(slot);
  return true;
}

const LoadedModel* shown_for_view(const Session& s, const char* what, bool needs_layers) {
  const LoadedModel* lm = s.shown();
  if (!lm) {
    ui::explain((std::string("Load a model to ") + what + ".").c_str());
    return nullptr;
  }
  if (needs_layers && lm->model.config().n_layers == 0) {
    ui::explain("This model has no attention layers: only the direct path (the bigram table).");
    return nullptr;
  }
  ImGui::PushStyleColor(ImGuiCol_Text, ui::kAccentText);
  ImGui::TextWrapped("Numbers from the %s.", lm->model.processing.any()
                                                 ? "processed weights (TransformerLens defaults)"
                                                 : "raw weights (as stored)");
  ImGui::PopStyleColor();
  return lm;
}

}  // namespace cs::app::session_ui
