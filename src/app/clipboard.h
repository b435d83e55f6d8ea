// Clipboard bridge for ImGui text fields. SDL2 has no browser clipboard, so:
// copy (Ctrl+C in a field) goes to navigator.clipboard.writeText through the
// shell; paste comes from the shell's "paste" event listener, which hands the
// text to cs_paste_text() (bridge.cpp) to be typed into the active field.
#pragma once

namespace cs::app {

// Replaces the SDL backend's clipboard functions with the browser bridge.
void install_clipboard();
// Types pasted text into the active ImGui field.
void paste_text(const char* text);

}  // namespace cs::app
