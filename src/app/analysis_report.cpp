// The analysis report as a download (analysis_report.h).
#include "app/analysis_report.h"

#include <memory>

#include "app/export.h"
#include "app/heads_view.h"
#include "core/report.h"
#include "io/report_json.h"

namespace cs::app {

void AnalysisReport::start(Session& s) {
  const auto m = s.shown_shared();
  if (!m) return;
  ReportOptions opt;
  opt.circuit = circuit_options(*m, /*normalize_embed=*/true);
  opt.diagonal = HeadsView::diagonal_is_quick(s);
  opt.bos = bos_or_none(*m);
  std::unique_ptr<ReportPlan> plan;
  try {
    plan = std::make_unique<ReportPlan>(m->model, opt);
  } catch (const Error& e) {
    s.set_error(std::string("analysis report: ") + e.what());
    return;
  }
  const std::string name = export_file_name(export_model_name(s), "analysis", "report", "json");
  const uint64_t generation = s.generation();
  JobOptions o;
  o.label = "analysis report";
  o.keep = m;
  o.priority = 3;
  o.failed = [&s](const std::string& message) { s.set_error("analysis report: " + message); };
  s.jobs().start<ReportPlan>(
      kSlot, std::move(plan),
      [this, m, opt, name, generation](ReportPlan& p) {
        ready_ = File{name, dump_json(report_json(*m, opt, p.result()), 1)};
        last_ = Json{{"name", name}, {"bytes", ready_->json.size()}, {"model_generation", generation}};
      },
      std::move(o));
}

void AnalysisReport::cancel(Session& s) { s.jobs().cancel(kSlot); }

void AnalysisReport::on_model(Session& s) {
  cancel(s);
  ready_.reset();
}

std::optional<AnalysisReport::File> AnalysisReport::take_ready() { return std::exchange(ready_, std::nullopt); }

Json AnalysisReport::state_json(const Session& s) const {
  Json j;
  const JobRunner::Info* info = s.jobs().info(kSlot);
  j["running"] = info != nullptr;
  j["progress"] = info ? info->progress : 0.f;
  j["stage"] = info ? info->stage : std::string();
  j["last"] = last_;
  return j;
}

}  // namespace cs::app
