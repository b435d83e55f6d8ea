// The model panel's "Download report": the whole analysis of the shown model
// (core/report.h) as one JSON file, the one `circuitscope report MODEL
// --json` prints (io/report_json.h; docs/exports.md). A job in kSlot (its
// progress shown, cancellable); a new model or weights drop it. Once done,
// the file waits in take_ready() for the page to save. No ImGui here (built
// natively too).
#pragma once
#include <optional>
#include <string>

#include "app/json.h"
#include "app/session.h"

namespace cs::app {

class AnalysisReport {
 public:
  static constexpr const char* kSlot = "report";
  struct File {
    std::string name, json;  // "<model>_analysis_report.json", the report as text
  };
  // Starts the report of the shown model (replacing one still running): the
  // CLI's defaults, with the weights shown (processed or raw) and the OV
  // diagonal test only when the Heads view runs it by default (quick enough).
  void start(Session& s);
  void cancel(Session& s);
  bool running(const Session& s) const { return s.jobs().running(kSlot); }
  // The shown model changed: a report of the old one is no longer wanted.
  void on_model(Session& s);
  // The finished report, once (the page saves it as a download).
  std::optional<File> take_ready();
  // {"running", "progress", "stage", "last": {"name", "bytes", "model_generation"} | null}.
  Json state_json(const Session& s) const;

 private:
  std::optional<File> ready_;
  Json last_;  // what state_json says of the last finished report (null before one)
};

}  // namespace cs::app
