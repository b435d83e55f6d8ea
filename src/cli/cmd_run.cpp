// `circuitscope run MODEL (--text TEXT | --ids 1,2,3) [--json] [--logits] [--patterns] [--raw] [--no-bos]
//                  [--ablate L.H,L.H,...]`
// Runs the forward pass (core/forward.h) on one sequence.
// JSON: {"ids": [..], "tokens": [display..], "weights": "processed"|"raw",
//        "loss": mean next-token loss (null for one token), "losses": per position [T-1],
//        "logits": [T][d_vocab_out] (--logits), "patterns": [layer][head][query][key] (--patterns)}
// --text prepends the tokenizer's BOS (if it has one) unless --no-bos, as
// TransformerLens does by default; --ids are used exactly as given.
// --ablate: pattern-preserving ablation (docs/two-layer.md): the patterns of
// the full run are kept and forced, the listed heads' outputs zeroed; loss,
// losses, logits and the predictions are the ablated run's, and the JSON adds
// "ablated": [{"layer", "head"}..], "loss_full", "losses_full". The patterns
// are the full run's (the ones forced).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "cli/cli_common.h"
#include "core/error.h"
#include "core/forward.h"

namespace cs::cli {

namespace {

// Columns a string takes in a terminal: one per UTF-8 code point.
int text_width(const std::string& s) {
  int n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

Json row_json(const RowMat& m, Eigen::Index r) {
  Json row = Json::array();
  row.get_ref<Json::array_t&>().reserve(size_t(m.cols()));
  for (Eigen::Index c = 0; c < m.cols(); ++c) row.push_back(m(r, c));
  return row;
}

// Writes a [rows][cols] matrix as nested JSON arrays one row at a time, so a
// [1024][48262] logits table never exists as one JSON tree in memory.
void write_matrix(std::ostream& out, const RowMat& m) {
  out << '[';
  for (Eigen::Index r = 0; r < m.rows(); ++r) {
    if (r) out << ',';
    out << row_json(m, r).dump();
  }
  out << ']';
}

void print_text(std::ostream& out, const LoadedModel& lm, const std::vector<int>& ids, const RowMat& logits,
                const std::vector<float>& losses, float loss, const std::vector<HeadRef>& ablated, float loss_full) {
  RowMat lp = log_softmax_rows(logits);
  out << "weights: " << lm.model.processing.describe() << "\n";
  if (!ablated.empty()) {
    out << "ablated (patterns preserved):";
    for (const HeadRef& h : ablated) out << ' ' << h.layer << '.' << h.head;
    out << "; mean loss of the full model: " << loss_full << " nats\n";
  }
  out << "pos  id      token            loss(next)  top prediction\n";
  for (size_t t = 0; t < ids.size(); ++t) {
    Eigen::Index best = 0;
    lp.row(Eigen::Index(t)).maxCoeff(&best);
    char buf[64];
    if (t < losses.size())
      std::snprintf(buf, sizeof buf, "%10.4f", double(losses[t]));
    else
      std::snprintf(buf, sizeof buf, "%10s", "-");
    std::string tok = token_display(lm, ids[t]);
    out << t << std::string(t < 10 ? 4 : t < 100 ? 3 : 2, ' ') << ids[t]
        << std::string(std::max<int>(1, 8 - int(std::to_string(ids[t]).size())), ' ') << tok
        << std::string(std::max<int>(1, 17 - text_width(tok)), ' ') << buf << "  "
        << token_display(lm, int(best)) << " (p=" << std::exp(lp(Eigen::Index(t), best)) << ")\n";
  }
  out << "mean loss: " << loss << " nats over " << losses.size() << " predictions\n";
}

}  // namespace

int cmd_run(const std::vector<std::string>& words) {
  Args args(words, {{"--json", "--logits", "--patterns", "--raw", "--no-bos"}, {"--text", "--ids", "--ablate"}});
  args.expect_positional(1, "MODEL");
  check_input_args(args);
  if ((args.has("--logits") || args.has("--patterns")) && !args.has("--json"))
    throw UsageError("--logits and --patterns need --json");
  std::vector<HeadRef> ablated;
  if (auto v = args.value("--ablate")) ablated = parse_head_list(*v, "--ablate");
  LoadedModel lm = load_model_arg(args.positional()[0], args.has("--raw"));
  const ModelConfig& c = lm.model.config();
  for (const HeadRef& h : ablated) check_head(h, c);
  std::vector<int> ids = input_ids(args, lm);

  ForwardOptions fo;
  fo.keep_cache = args.has("--patterns") || !ablated.empty();
  ForwardResult r = forward(lm.model, ids, fo);
  std::vector<float> losses_full, losses = token_losses(r.logits, ids);
  float loss_full = 0, loss = mean_loss(r.logits, ids);
  if (!ablated.empty()) {
    ForwardOptions ao;
    ao.keep_cache = false;
    ao.ablate.assign(size_t(c.n_layers) * size_t(c.n_heads), 0);
    for (const HeadRef& h : ablated) ao.ablate[size_t(h.layer) * size_t(c.n_heads) + size_t(h.head)] = 1;
    ao.frozen_patterns = r.cache.pattern;
    RowMat ablated_logits = forward(lm.model, ids, ao).logits;
    losses_full = std::move(losses);
    loss_full = loss;
    losses = token_losses(ablated_logits, ids);
    loss = mean_loss(ablated_logits, ids);
    r.logits = std::move(ablated_logits);
  }

  if (!args.has("--json")) {
    std::ostringstream s;
    print_text(s, lm, ids, r.logits, losses, loss, ablated, loss_full);
    std::cout << s.str();
    return 0;
  }

  Json head;
  head["ids"] = ids;
  Json tokens = Json::array();
  for (int id : ids) tokens.push_back(token_display(lm, id));
  head["tokens"] = tokens;
  head["weights"] = weights_kind(lm.model);
  head["loss"] = std::isfinite(loss) ? Json(loss) : Json(nullptr);
  head["losses"] = losses;
  if (!ablated.empty()) {
    Json a = Json::array();
    for (const HeadRef& h : ablated) a.push_back(Json{{"layer", h.layer}, {"head", h.head}});
    head["ablated"] = a;
    head["loss_full"] = std::isfinite(loss_full) ? Json(loss_full) : Json(nullptr);
    head["losses_full"] = losses_full;
  }

  // Everything is computed; from here on only printing happens.
  std::ostream& out = std::cout;
  std::string small = head.dump(-1, ' ', false, nlohmann::detail::error_handler_t::replace);
  small.pop_back();  // the closing '}'; big arrays follow
  out << small;
  if (args.has("--logits")) {
    out << ",\"logits\":";
    write_matrix(out, r.logits);
  }
  if (args.has("--patterns")) {
    out << ",\"patterns\":[";
    for (int l = 0; l < c.n_layers; ++l) {
      out << (l ? ",[" : "[");
      for (int h = 0; h < c.n_heads; ++h) {
        if (h) out << ',';
        write_matrix(out, r.cache.attn(l, h, c.n_heads));
      }
      out << ']';
    }
    out << ']';
  }
  out << "}\n";
  out.flush();
  return 0;
}

}  // namespace cs::cli
