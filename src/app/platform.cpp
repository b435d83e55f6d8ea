#include "app/platform.h"

#include <emscripten.h>

// Each call goes through the shell's one global object, window.circuitscopeShell.
EM_JS(void, cs_js_open_file_picker, (), { window.circuitscopeShell && window.circuitscopeShell.openFilePicker(); });
EM_JS(void, cs_js_load_bundled, (const char* id), {
  window.circuitscopeShell && window.circuitscopeShell.loadBundled(UTF8ToString(id));
});
EM_JS(void, cs_js_fetch_train_sample, (), {
  window.circuitscopeShell && window.circuitscopeShell.fetchTrainSample();
});
EM_JS(void, cs_js_open_text_picker, (), { window.circuitscopeShell && window.circuitscopeShell.openTextPicker(); });
EM_JS(void, cs_js_clipboard_write, (const char* text), {
  window.circuitscopeShell && window.circuitscopeShell.copyText(UTF8ToString(text));
});
EM_JS(void, cs_js_copy_link, (), { window.circuitscopeShell && window.circuitscopeShell.copyLink(); });
EM_JS(void, cs_js_page_started, (), { window.circuitscopeShell && window.circuitscopeShell.pageStarted(); });
EM_JS(void, cs_js_fatal, (const char* message), {
  window.circuitscopeShell && window.circuitscopeShell.fatal(UTF8ToString(message));
});
EM_JS(void, cs_js_download, (const char* name, const char* mime, const char* data, size_t size), {
  window.circuitscopeShell &&
      window.circuitscopeShell.download(UTF8ToString(name), UTF8ToString(mime), HEAPU8.slice(data, data + size));
});
// One file of a folder to save; the last one saves them all (shell.saveFolder).
EM_JS(void, cs_js_save_folder_file, (const char* folder, const char* name, const char* mime, const uint8_t* data,
                                      size_t size, int last), {
  const files = (Module.csFolderFiles = Module.csFolderFiles || []);
  files.push({ name: UTF8ToString(name), mime: UTF8ToString(mime), bytes: HEAPU8.slice(data, data + size) });
  if (!last) return;
  Module.csFolderFiles = [];
  window.circuitscopeShell && window.circuitscopeShell.saveFolder(UTF8ToString(folder), files);
});
EM_JS(void, cs_js_save_png, (float x, float y, float w, float h, const char* name), {
  window.circuitscopeShell && window.circuitscopeShell.savePng(x, y, w, h, UTF8ToString(name));
});
EM_JS(double, cs_js_device_pixel_ratio, (), { return window.devicePixelRatio || 1; });

namespace cs::app::platform {

void open_file_picker() { cs_js_open_file_picker(); }
void load_bundled(const std::string& id) { cs_js_load_bundled(id.c_str()); }
void fetch_train_sample() { cs_js_fetch_train_sample(); }
void open_text_picker() { cs_js_open_text_picker(); }
void clipboard_write(const std::string& text) { cs_js_clipboard_write(text.c_str()); }
void copy_link() { cs_js_copy_link(); }
void download(const std::string& name, const std::string& mime, const std::string& bytes) {
  cs_js_download(name.c_str(), mime.c_str(), bytes.data(), bytes.size());
}
void save_folder(const std::string& folder, const FileSet& files) {
  size_t i = 0;
  for (const auto& [name, bytes] : files)
    cs_js_save_folder_file(folder.c_str(), name.c_str(),
                           name.ends_with(".json") ? "application/json" : "application/octet-stream", bytes.data(),
                           bytes.size(), ++i == files.size() ? 1 : 0);
}
void save_png(float x, float y, float w, float h, const std::string& name) { cs_js_save_png(x, y, w, h, name.c_str()); }
void page_started() { cs_js_page_started(); }
void fatal(const std::string& message) { cs_js_fatal(message.c_str()); }
float device_pixel_ratio() { return float(cs_js_device_pixel_ratio()); }

}  // namespace cs::app::platform
