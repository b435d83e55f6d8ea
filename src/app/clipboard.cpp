#include "app/clipboard.h"

#include <string>

#include "app/platform.h"
#include "imgui.h"

namespace cs::app {

namespace {

std::string g_copied;  // the last text copied from the page

void set_clipboard(void*, const char* text) {
  g_copied = text ? text : "";
  platform::clipboard_write(g_copied);
}

// ImGui asks for the clipboard when the user presses Ctrl+V; the browser
// delivers the real text just after, as a paste event (see paste_text). Giving
// ImGui nothing here keeps the text from being inserted twice.
const char* get_clipboard(void*) { return ""; }

}  // namespace

void install_clipboard() {
  ImGuiIO& io = ImGui::GetIO();
  io.SetClipboardTextFn = set_clipboard;
  io.GetClipboardTextFn = get_clipboard;
  io.ClipboardUserData = nullptr;
}

void paste_text(const char* text) {
  if (text && *text) ImGui::GetIO().AddInputCharactersUTF8(text);
}

}  // namespace cs::app
