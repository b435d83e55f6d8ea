// The edge between the page's C++ and the browser shell (shell/circuitscope-shell.js).
// Calls from C++ into JavaScript; the calls the other way are in bridge.cpp.
#pragma once
#include <string>

#include "io/model_io.h"

namespace cs::app::platform {

// Opens the browser's file chooser (the shell's hidden <input type=file multiple>).
void open_file_picker();
// Asks the shell to download a bundled model (assets/models/<id>/...) and load it.
void load_bundled(const std::string& id);
// Asks the shell to download the Train view's text sample (assets/text/) and
// hand it over (staged like a model's files, then bridge.cpp: cs_train_received).
void fetch_train_sample();
// Opens a file chooser for one text file, handed over to the Train view the same way.
void open_text_picker();
// Writes text to the system clipboard (navigator.clipboard.writeText).
void clipboard_write(const std::string& text);
// Copies the address of the page's state now (a link: app/link.h) to the clipboard.
void copy_link();
// Saves bytes as a file named `name` (a download; nothing leaves the machine).
void download(const std::string& name, const std::string& mime, const std::string& bytes);
// Saves files as a folder named `folder`: in a folder the user picks where the
// browser lets a page write one (<picked>/<folder>/<file>), else as downloads
// named <folder>.<file>. A .json file is saved as application/json.
void save_folder(const std::string& folder, const FileSet& files);
// Saves the canvas rectangle (x, y, w, h in CSS pixels) as a PNG named `name`
// (at the display's pixel ratio). Call right after the frame is rendered.
void save_png(float x, float y, float w, float h, const std::string& name);
// Tells the shell the page draws (hides the boot screen once no download is pending).
void page_started();
// Shows a fatal message in the shell (e.g. no WebGL2 context).
void fatal(const std::string& message);
// window.devicePixelRatio
float device_pixel_ratio();

}  // namespace cs::app::platform
