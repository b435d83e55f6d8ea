// The JSON of the model-wide analyses, one writer each, shared by the command
// that prints it alone (`circuitscope info|heads|composition|virtual|induction
// --json`) and by the analysis report (`circuitscope report --json`, the
// page's "Download report"), so a report's section is byte for byte what its
// command prints. Schemas: the comment at the top of each cmd_*.cpp and
// docs/exports.md.
#pragma once
#include <complex>
#include <optional>
#include <span>
#include <vector>

#include "core/composition.h"
#include "core/head_summary.h"
#include "core/induction.h"
#include "core/report.h"
#include "io/json_out.h"
#include "io/model_io.h"

namespace cs {

// `info --json`: {"config", "parameters", "weights", "processing", "tokenizer", "warnings", "weights_file"}.
Json info_json(const LoadedModel& lm);
// `heads --json`: {"weights", "embed_norm", "heads": [head_summary_json]}.
Json heads_json(const Model& m, bool embed_norm, std::span<const HeadSummary> heads);
// `composition --json`: {"weights", "n_layers", "n_heads", "Q", "K", "V", "virtual_norm", "baseline"}.
Json composition_json(const Model& m, const CompositionScores& s);
// `virtual --json`: {"weights", "embed_norm", "n_layers", "n_heads", "count",
// "virtual_heads": [...]}: the first eigenvalues.size() of `all`, each with its
// OV eigenvalues (copying score null when the circuit is not square).
Json virtual_heads_json(const Model& m, bool embed_norm, std::span<const VirtualHeadNorm> all,
                        std::span<const std::vector<std::complex<double>>> eigenvalues);
// `induction --json` without a sample: {"weights", "tokens", "repeats", "examples", "seed", "bos",
// "sequences", "prefix_matching", "previous_token", "copying", "loss_first", "loss_repeat",
// "k_term" (null without a scatter)}.
Json induction_json(const Model& m, const InductionExperiment& ex, const std::optional<InductionScatter>& scatter);

// The arguments after MODEL that make each section's command print it alone
// ({"info": "--json", "heads": "--json --no-diagonal", ...}).
Json report_commands(const Model& m, const ReportOptions& opt, const Report& r);
// {"report": "circuitscope analysis report", "version": 1, "commands": report_commands,
//  "info", "heads", "composition", "virtual", "induction"}.
Json report_json(const LoadedModel& lm, const ReportOptions& opt, const Report& r);

}  // namespace cs
