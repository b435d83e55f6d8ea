#include "app/ui.h"

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>

#include "imgui_internal.h"  // ImTextCharFromUtf8

namespace cs::app::ui {

namespace {
ImFont* g_body = nullptr;
ImFont* g_heading = nullptr;
}  // namespace

void set_fonts(ImFont* body, ImFont* heading) {
  g_body = body;
  g_heading = heading;
}
ImFont* heading_font() { return g_heading ? g_heading : ImGui::GetFont(); }

void heading(const char* text) {
  ImGui::PushFont(heading_font());
  ImGui::PushTextWrapPos(0.f);
  ImGui::TextUnformatted(text);
  ImGui::PopTextWrapPos();
  ImGui::PopFont();
}

void explain(const char* text) {
  ImGui::PushStyleColor(ImGuiCol_Text, kMutedText);
  ImGui::TextWrapped("%s", text);
  ImGui::PopStyleColor();
}

bool job_progress(const AppState& s, const char* slot) {
  const JobRunner::Info* j = s.jobs().info(slot);
  if (!j) return false;
  // A job done within its first frame (most queries) shows nothing: no flicker.
  if (j->frames == 0) return true;
  ImGui::PushStyleColor(ImGuiCol_Text, kAccentText);
  ImGui::Text("computing the %s... %d%%", j->label.c_str(), int(j->progress * 100.f));
  ImGui::PopStyleColor();
  return true;
}

void help_marker(const char* text) {
  ImGui::SameLine();
  ImGui::TextDisabled("(?)");
  if (ImGui::IsItemHovered()) {
    ImGui::BeginTooltip();
    ImGui::PushTextWrapPos(ImGui::GetFontSize() * 32.f);
    ImGui::TextUnformatted(text);
    ImGui::PopTextWrapPos();
    ImGui::EndTooltip();
  }
}

std::string thousands(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

std::string si(double n) {
  const char* suffix[] = {"", "k", "M", "B"};
  int i = 0;
  while (std::abs(n) >= 1000.0 && i < 3) {
    n /= 1000.0;
    ++i;
  }
  return i == 0 ? fmt("%.0f", n) : fmt("%.3g%s", n, suffix[i]);
}

std::string fmt(const char* format, ...) {
  va_list args;
  va_start(args, format);
  char buf[512];
  int n = std::vsnprintf(buf, sizeof buf, format, args);
  va_end(args);
  if (n < 0) return {};
  if (size_t(n) < sizeof buf) return std::string(buf, size_t(n));
  std::string out(size_t(n) + 1, '\0');
  va_start(args, format);
  std::vsnprintf(out.data(), out.size(), format, args);
  va_end(args);
  out.resize(size_t(n));
  return out;
}

void token_tooltip(const AppState& s, int id) {
  ImGui::Text("token %s", s.token_display(id).c_str());
  ImGui::TextDisabled("id %d", id);
  const LoadedModel* m = s.shown();
  if (m && m->tokenizer) {
    ImGui::TextDisabled("vocabulary string: %s", visible_bytes(m->tokenizer->token_string(id)).c_str());
  }
}

void token_chip(const AppState& s, int id) {
  const std::string text = s.token_display(id);
  const ImVec2 pad(4.f, 1.f);
  const ImVec2 size = ImGui::CalcTextSize(text.c_str());
  const ImVec2 p = ImGui::GetCursorScreenPos();
  ImGui::Dummy(ImVec2(size.x + 2 * pad.x, size.y + 2 * pad.y));
  ImDrawList* dl = ImGui::GetWindowDrawList();
  dl->AddRectFilled(p, ImVec2(p.x + size.x + 2 * pad.x, p.y + size.y + 2 * pad.y),
                    ImGui::GetColorU32(ImGuiCol_FrameBg), 3.f);
  dl->AddText(ImVec2(p.x + pad.x, p.y + pad.y), ImGui::GetColorU32(ImGuiCol_Text), text.c_str());
  if (ImGui::IsItemHovered()) {
    ImGui::BeginTooltip();
    token_tooltip(s, id);
    ImGui::EndTooltip();
  }
}

void value_bar(float fraction, uint32_t color, const char* label) {
  fraction = std::clamp(std::isfinite(fraction) ? fraction : 0.f, 0.f, 1.f);
  const float w = std::max(ImGui::GetContentRegionAvail().x, 20.f);
  const float h = ImGui::GetTextLineHeight();
  const ImVec2 p = ImGui::GetCursorScreenPos();
  ImGui::Dummy(ImVec2(w, h));
  ImDrawList* dl = ImGui::GetWindowDrawList();
  dl->AddRectFilled(p, ImVec2(p.x + w, p.y + h), ImGui::GetColorU32(ImGuiCol_FrameBg), 2.f);
  dl->AddRectFilled(p, ImVec2(p.x + w * fraction, p.y + h), color, 2.f);
  dl->AddText(ImVec2(p.x + 4.f, p.y), ImGui::GetColorU32(ImGuiCol_Text), label);
}

bool token_picker(const char* id, const char* hint, TokenPicker& p, const AppState& s, int* picked) {
  ImGui::PushID(id);
  bool chosen = false;
  ImGui::SetNextItemWidth(std::min(ImGui::GetContentRegionAvail().x, ImGui::GetFontSize() * 22.f));
  const bool enter = ImGui::InputTextWithHint("##query", hint, p.query, sizeof p.query,
                                              ImGuiInputTextFlags_EnterReturnsTrue);
  mark_item((std::string(id) + "_query").c_str());
  if (ImGui::IsItemEdited() || p.generation != s.generation()) {
    p.matches = s.find_tokens(p.query);
    p.generation = s.generation();
  }
  if (enter && !p.matches.ids.empty()) {
    *picked = p.matches.ids.front();
    chosen = true;
  }
  if (p.query[0] != '\0') {
    if (!p.matches.note.empty()) {
      ImGui::SameLine();
      ImGui::TextDisabled("%s", p.matches.note.c_str());
    }
    const size_t shown = std::min<size_t>(p.matches.ids.size(), 48);
    for (size_t i = 0; i < shown; ++i) {
      const int t = p.matches.ids[i];
      if (i > 0) ImGui::SameLine();
      if (ImGui::GetContentRegionAvail().x < ImGui::GetFontSize() * 3.f) ImGui::NewLine();
      ImGui::PushID(int(i));
      if (ImGui::SmallButton(s.token_display(t).c_str())) {
        *picked = t;
        chosen = true;
      }
      if (ImGui::IsItemHovered()) {
        ImGui::BeginTooltip();
        token_tooltip(s, t);
        ImGui::TextDisabled("click to choose");
        ImGui::EndTooltip();
      }
      ImGui::PopID();
    }
    if (p.matches.ids.size() > shown) ImGui::TextDisabled("... %zu more", p.matches.ids.size() - shown);
  }
  ImGui::PopID();
  return chosen;
}

bool token_id_input(const char* label, int* id, int n) {
  ImGui::SetNextItemWidth(ImGui::GetFontSize() * 8.f);
  int v = *id;
  if (ImGui::InputInt(label, &v, 1, 100)) {
    v = std::clamp(v, 0, std::max(0, n - 1));
    if (v != *id) {
      *id = v;
      return true;
    }
  }
  return false;
}

namespace {
std::map<std::string, ImVec4> g_marked;
}  // namespace

void mark_item(const char* name) { mark_rect(name, ImGui::GetItemRectMin(), ImGui::GetItemRectMax()); }

void mark_rect(const char* name, ImVec2 min, ImVec2 max) { g_marked[name] = ImVec4(min.x, min.y, max.x, max.y); }

const std::map<std::string, ImVec4>& marked_items() { return g_marked; }

void add_text_vertical(ImDrawList* dl, ImVec2 pos, uint32_t col, const char* text) {
  ImFont* font = ImGui::GetFont();
  const float scale = ImGui::GetFontSize() / font->FontSize;
  const char* s = text;
  const char* end = text + std::strlen(text);
  float pen = 0.f;  // distance along the reading direction (upwards on screen)
  while (s < end) {
    unsigned int c = 0;
    int n = ImTextCharFromUtf8(&c, s, end);
    s += n > 0 ? n : 1;
    const ImFontGlyph* g = font->FindGlyph(ImWchar(c));
    if (!g) continue;
    if (g->Visible) {
      // Unrotated glyph box relative to pos: x in [pen+X0, pen+X1], y in [Y0, Y1] (y down).
      // A 90-degree counter-clockwise turn maps (dx, dy) to (dy, -dx).
      const float x0 = pen + g->X0 * scale, x1 = pen + g->X1 * scale;
      const float y0 = g->Y0 * scale, y1 = g->Y1 * scale;
      dl->PrimReserve(6, 4);
      dl->PrimQuadUV(ImVec2(pos.x + y0, pos.y - x0), ImVec2(pos.x + y0, pos.y - x1), ImVec2(pos.x + y1, pos.y - x1),
                     ImVec2(pos.x + y1, pos.y - x0), ImVec2(g->U0, g->V0), ImVec2(g->U1, g->V0),
                     ImVec2(g->U1, g->V1), ImVec2(g->U0, g->V1), col);
    }
    pen += g->AdvanceX * scale;
  }
}

}  // namespace cs::app::ui
