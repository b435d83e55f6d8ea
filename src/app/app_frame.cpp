// The page's one full-window ImGui window: error banner, loading bar, the
// model panel on the left and the registered views (view.h) in tabs on the right.
#include <algorithm>
#include <string>

#include "app/export.h"
#include "app/platform.h"
#include "app/ui.h"
#include "app/views.h"
#include "imgui.h"

namespace cs::app {

namespace {

// Returns true when the banner was dismissed this frame.
bool draw_error_banner(Session& s) {
  if (s.error().empty()) return false;
  ImGui::PushStyleColor(ImGuiCol_ChildBg, ImVec4(0.55f, 0.08f, 0.10f, 1.f));
  ImGui::PushStyleColor(ImGuiCol_Text, ImVec4(1.f, 1.f, 1.f, 1.f));
  const ImGuiStyle& st = ImGui::GetStyle();
  const float wrap = ImGui::GetContentRegionAvail().x - ImGui::GetFontSize() * 7.f;
  const std::string what = s.error_heading();
  const ImVec2 text = ImGui::CalcTextSize(s.error().c_str(), nullptr, false, wrap - st.WindowPadding.x);
  const float h = std::max(text.y + ImGui::GetTextLineHeightWithSpacing(), ImGui::GetFrameHeight()) +
                  st.WindowPadding.y * 2.f;
  ImGui::BeginChild("##error", ImVec2(0, h), false,
                    ImGuiWindowFlags_NoScrollbar | ImGuiWindowFlags_AlwaysUseWindowPadding);
  ImGui::TextUnformatted(what.c_str());
  ImGui::PushTextWrapPos(wrap);
  ImGui::TextUnformatted(s.error().c_str());
  ImGui::PopTextWrapPos();
  ImGui::SetCursorPos(ImVec2(ImGui::GetWindowContentRegionMax().x - ImGui::CalcTextSize("Dismiss").x -
                                 st.FramePadding.x * 2.f, st.WindowPadding.y));
  const bool dismissed = ImGui::Button("Dismiss");
  if (dismissed) s.clear_error();
  ImGui::EndChild();
  ImGui::PopStyleColor(2);
  const std::string note = s.error_note();
  if (!note.empty()) {
    ImGui::PushStyleColor(ImGuiCol_Text, ui::kMutedText);
    ImGui::TextUnformatted(note.c_str());
    ImGui::PopStyleColor();
  }
  return dismissed;
}

// The open tab's tables as files (app/export.h): a popup from the tab bar's
// "Download" button, one line per table with CSV and JSON.
void draw_export_popup(App& app) {
  if (!ImGui::BeginPopup("##export")) return;
  Session& s = app.session();
  const View* v = app.find(app.open_view());
  const LoadedModel* lm = s.shown();
  const std::vector<ExportTable> tables = v && lm ? v->tables(s) : std::vector<ExportTable>{};
  if (tables.empty() && ui::frame_plots().empty()) ImGui::TextDisabled("Nothing computed in this tab yet to download.");
  else ImGui::TextDisabled("Download what this tab shows:");
  // Named after the model and the view.
  const std::string model = export_model_name(s);
  const std::string weights = lm ? weights_kind(lm->model) : "raw";
  for (const ExportTable& t : tables) {
    ImGui::PushID(t.name.c_str());
    ImGui::TextUnformatted(t.title.c_str());
    ImGui::SameLine();
    if (ImGui::SmallButton("CSV")) {
      platform::download(export_file_name(model, v->id(), t.name, "csv"), "text/csv", to_csv(t));
      ImGui::CloseCurrentPopup();
    }
    ui::mark_item(("export_" + t.name + "_csv").c_str());
    ImGui::SameLine();
    if (ImGui::SmallButton("JSON")) {
      platform::download(export_file_name(model, v->id(), t.name, "json"), "application/json",
                         dump_json(export_json(t, model, v->id(), weights), 1));
      ImGui::CloseCurrentPopup();
    }
    ui::mark_item(("export_" + t.name + "_json").c_str());
    ImGui::PopID();
  }
  // The plots this tab drew, as pictures with their axes and legend (taken after the menu closes).
  const std::vector<ui::PlotRect> plots = lm ? ui::frame_plots() : std::vector<ui::PlotRect>{};
  if (!plots.empty()) ImGui::Separator();
  for (size_t i = 0; i < plots.size(); ++i) {
    ImGui::PushID(int(i));
    ImGui::TextUnformatted(plots[i].title.c_str());
    ImGui::SameLine();
    if (ImGui::SmallButton("PNG")) {
      ui::request_capture(plots[i].title, export_file_name(model, v ? v->id() : "page", plots[i].title, "png"));
      ImGui::CloseCurrentPopup();
    }
    ui::mark_item(("export_plot_" + std::to_string(i) + "_png").c_str());
    ImGui::PopID();
  }
  ImGui::EndPopup();
}

}  // namespace

void Page::draw(App& app) {
  Session& s = app.session();
  ui::begin_frame();
  const ImGuiViewport* vp = ImGui::GetMainViewport();
  ImGui::SetNextWindowPos(vp->WorkPos);
  ImGui::SetNextWindowSize(vp->WorkSize);
  ImGui::PushStyleVar(ImGuiStyleVar_WindowRounding, 0.f);
  ImGui::PushStyleVar(ImGuiStyleVar_WindowBorderSize, 0.f);
  ImGui::Begin("circuitscope", nullptr,
               ImGuiWindowFlags_NoDecoration | ImGuiWindowFlags_NoMove | ImGuiWindowFlags_NoSavedSettings |
                   ImGuiWindowFlags_NoBringToFrontOnFocus);
  ImGui::PopStyleVar(2);

  const bool dismissed = draw_error_banner(s);

  const float avail = ImGui::GetContentRegionAvail().x;
  const bool narrow = avail < ImGui::GetFontSize() * 50.f;  // phones: stack the panels
  const float left_w = narrow ? avail : std::clamp(avail * 0.28f, ImGui::GetFontSize() * 20.f,
                                                   ImGui::GetFontSize() * 30.f);
  ImGui::BeginChild("##model", ImVec2(left_w, narrow ? ImGui::GetContentRegionAvail().y * 0.45f : 0.f), true);
  draw_model_panel(app);
  ImGui::EndChild();
  if (!narrow) ImGui::SameLine();
  ImGui::BeginChild("##views", ImVec2(0, 0), true);
  if (ImGui::BeginTabBar("##view-tabs")) {
    const std::string requested = app.take_requested_tab();
    for (const auto& v : app.views()) {
      const ImGuiTabItemFlags flags = requested == v->id() ? ImGuiTabItemFlags_SetSelected : 0;
      if (ImGui::BeginTabItem(v->title(), nullptr, flags)) {
        app.set_open_view(v->id());
        if (dismissed) v->retry_failed_work();
        v->shown(s);  // starts work a model change (or a failure) left waiting for this tab
        ImGui::BeginChild((std::string("##scroll-") + v->id()).c_str());
        ImGui::PushID(v->id());
        v->draw(s);
        ui::view_drawn();
        ImGui::PopID();
        ImGui::EndChild();
        ImGui::EndTabItem();
      } else {
        v->retry_failed_work();
      }
    }
    if (ImGui::TabItemButton("Download...", ImGuiTabItemFlags_Trailing | ImGuiTabItemFlags_NoTooltip))
      ImGui::OpenPopup("##export");
    ui::mark_item("export");
    draw_export_popup(app);
    ImGui::EndTabBar();
  }
  ImGui::EndChild();
  ImGui::End();
}

}  // namespace cs::app
