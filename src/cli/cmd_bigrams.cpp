// `circuitscope bigrams MODEL (--token TEXT | --id N) [--top K] [--reverse] [--json] [--raw]`
// The direct path (zero-layer circuit, core/direct_path.h) as a bigram table:
//   forward:  the K most likely next tokens after the source token,
//             {"source": {id, token}, "weights": .., "next": [{id, token, logit, prob}]}
//   reverse:  the K source tokens whose direct path gives the named next token
//             the highest logit, {"next_token": {id, token}, "weights": .., "sources": [...]}
//             (prob = p(next | source)).
#include <iostream>
#include <sstream>

#include "cli/cli_common.h"
#include "core/direct_path.h"
#include "core/error.h"

namespace cs::cli {

namespace {

// --token TEXT: an exact vocabulary entry (token string or raw bytes) first,
// else the text if it encodes to exactly one token.
int resolve_token(const LoadedModel& lm, const std::string& text) {
  if (!lm.tokenizer) throw Error("--token needs a tokenizer.json with the model; use --id");
  if (auto id = lm.tokenizer->find_token(text)) return *id;
  std::vector<int> ids = lm.tokenizer->encode(text);
  if (ids.size() == 1) return ids[0];
  std::string msg = "--token '" + text + "' is " + std::to_string(ids.size()) + " tokens";
  if (!ids.empty()) {
    msg += " (";
    for (size_t i = 0; i < ids.size() && i < 8; ++i)
      msg += (i ? " " : "") + lm.tokenizer->display(ids[i]) + "=" + std::to_string(ids[i]);
    if (ids.size() > 8) msg += " ...";
    msg += ")";
  }
  throw Error(msg + "; give one token or --id N");
}

}  // namespace

int cmd_bigrams(const std::vector<std::string>& words) {
  Args args(words, {{"--json", "--raw", "--reverse"}, {"--token", "--id", "--top"}});
  args.expect_positional(1, "MODEL");
  if (args.has("--token") == args.has("--id")) throw UsageError("give exactly one of --token TEXT or --id N");
  int k = int(args.integer("--top", 1, 1'000'000).value_or(10));
  std::optional<int> given_id;
  if (auto v = args.value("--id")) given_id = int(parse_int(*v, "--id", 0, INT32_MAX));

  LoadedModel lm = load_model_arg(args.positional()[0], args.has("--raw"));
  const ModelConfig& c = lm.model.config();
  int id = given_id ? *given_id : resolve_token(lm, *args.value("--token"));
  bool reverse = args.has("--reverse");
  int range = reverse ? c.vocab_out() : c.d_vocab;  // forward: a source (input) token; reverse: an output token
  if (id < 0 || id >= range)
    throw Error((given_id ? "--id " : "--token id ") + std::to_string(id) + " is outside [0, " +
                std::to_string(range) + ") (" + (reverse ? "d_vocab_out" : "d_vocab") + ")");
  k = std::min(k, reverse ? c.d_vocab : c.vocab_out());

  std::vector<Ranked> list = reverse ? bigram_top_sources(lm.model, id, k) : bigram_top_next(lm.model, id, k);

  if (args.has("--json")) {
    Json j;
    j[reverse ? "next_token" : "source"] = token_json(lm, id);
    j["weights"] = weights_kind(lm.model);
    j[reverse ? "sources" : "next"] = ranked_json(list, token_display_of(lm));
    print_json(std::cout, j, 2);
    return 0;
  }
  std::ostringstream s;
  if (reverse)
    s << "direct path: sources that most predict " << token_display(lm, id) << " (#" << id << ")";
  else
    s << "direct path: next tokens after " << token_display(lm, id) << " (#" << id << ")";
  s << ", " << weights_kind(lm.model) << " weights\n";
  s << "rank  id      logit      " << (reverse ? "p(next|source)" : "prob") << "  token\n";
  for (size_t i = 0; i < list.size(); ++i) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "%4zu  %-6d  %9.4f  %9.5f  ", i + 1, list[i].id, double(list[i].logit),
                  double(list[i].prob));
    s << buf << token_display(lm, list[i].id) << "\n";
  }
  std::cout << s.str();
  return 0;
}

}  // namespace cs::cli
