#include "app/platform.h"

#include <emscripten.h>

// Each call goes through the shell's one global object, window.circuitscopeShell.
EM_JS(void, cs_js_open_file_picker, (), { window.circuitscopeShell && window.circuitscopeShell.openFilePicker(); });
EM_JS(void, cs_js_load_bundled, (const char* id), {
  window.circuitscopeShell && window.circuitscopeShell.loadBundled(UTF8ToString(id));
});
EM_JS(void, cs_js_clipboard_write, (const char* text), {
  window.circuitscopeShell && window.circuitscopeShell.copyText(UTF8ToString(text));
});
EM_JS(void, cs_js_copy_link, (), { window.circuitscopeShell && window.circuitscopeShell.copyLink(); });
EM_JS(void, cs_js_page_started, (), { window.circuitscopeShell && window.circuitscopeShell.pageStarted(); });
EM_JS(void, cs_js_fatal, (const char* message), {
  window.circuitscopeShell && window.circuitscopeShell.fatal(UTF8ToString(message));
});
EM_JS(double, cs_js_device_pixel_ratio, (), { return window.devicePixelRatio || 1; });

namespace cs::app::platform {

void open_file_picker() { cs_js_open_file_picker(); }
void load_bundled(const std::string& id) { cs_js_load_bundled(id.c_str()); }
void clipboard_write(const std::string& text) { cs_js_clipboard_write(text.c_str()); }
void copy_link() { cs_js_copy_link(); }
void page_started() { cs_js_page_started(); }
void fatal(const std::string& message) { cs_js_fatal(message.c_str()); }
float device_pixel_ratio() { return float(cs_js_device_pixel_ratio()); }

}  // namespace cs::app::platform
