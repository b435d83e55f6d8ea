// `circuitscope skip-trigrams MODEL --head L.H [--top N] [--source ID] [--destination ID] [--out ID]
//     [--per-source K] [--sources K] [--json] [--raw] [--no-embed-norm]`
// The strongest skip-trigrams "[source] ... [destination] -> [out]" of one
// head (core/skip_trigrams.h; the score and the candidate set:
// docs/one-layer.md):
//   score = (QK[destination, source] / rms(QK)) * (OV[source, out] / rms(OV)),
// over trigrams with both entries positive, highest first. --per-source and
// --sources set SkipTrigramQuery::per_source_k and sources_k.
// JSON: {"head": {"layer","head"}, "weights", "embed_norm", "qk_rms", "ov_rms",
//        "entries": [{"source": {id, token}, "destination": {..}, "out": {..},
//                     "score", "qk", "ov"}]}
#include <cstdio>
#include <iostream>
#include <sstream>

#include "cli/cli_common.h"
#include "core/skip_trigrams.h"

namespace cs::cli {

int cmd_skip_trigrams(const std::vector<std::string>& words) {
  Args args(words, {{"--json", "--raw", "--no-embed-norm"},
                    {"--head", "--top", "--source", "--destination", "--out", "--per-source", "--sources"}});
  args.expect_positional(1, "MODEL");
  const HeadRef h = head_syntax(args);
  SkipTrigramQuery q;
  q.top_n = int(args.integer("--top", 1, 1'000'000).value_or(q.top_n));
  q.per_source_k = int(args.integer("--per-source", 1, 1'000'000).value_or(q.per_source_k));
  q.sources_k = int(args.integer("--sources", 1, 1'000'000).value_or(q.sources_k));
  q.source = token_id_option(args, "--source");
  q.destination = token_id_option(args, "--destination");
  q.out = token_id_option(args, "--out");

  LoadedModel lm = load_model_arg(args.positional()[0], args.has("--raw"));
  const ModelConfig& c = lm.model.config();
  check_head(h, c);
  if (q.source) check_token_id("--source", *q.source, c.d_vocab, "d_vocab");
  if (q.destination) check_token_id("--destination", *q.destination, c.d_vocab, "d_vocab");
  if (q.out) check_token_id("--out", *q.out, c.vocab_out(), "d_vocab_out");
  const CircuitOptions opt = circuit_options(args, lm);
  const SkipTrigramResult r = skip_trigrams(lm.model, h.layer, h.head, opt, q);

  if (args.has("--json")) {
    Json j;
    j["head"] = Json{{"layer", h.layer}, {"head", h.head}};
    j["weights"] = weights_kind(lm.model);
    j["embed_norm"] = opt.normalize_embed;
    j["qk_rms"] = float(r.qk_rms);
    j["ov_rms"] = float(r.ov_rms);
    Json a = Json::array();
    const TokenDisplay display = token_display_of(lm);
    for (const SkipTrigram& t : r.trigrams) a.push_back(skip_trigram_json(t, display));
    j["entries"] = std::move(a);
    print_json(std::cout, j, 2);
    return 0;
  }
  std::ostringstream s;
  s << "skip-trigrams of head " << h.layer << "." << h.head << ", " << weights_kind(lm.model) << " weights"
    << (opt.normalize_embed ? "" : ", W_E not normalized") << "; score = QK/rms(QK) * OV/rms(OV)\n";
  s << "rank     score        qk        ov  source ... destination -> out\n";
  for (size_t i = 0; i < r.trigrams.size(); ++i) {
    const SkipTrigram& t = r.trigrams[i];
    char buf[96];
    std::snprintf(buf, sizeof buf, "%4zu  %8.4f  %8.4g  %8.4g  ", i + 1, double(t.score), double(t.qk), double(t.ov));
    s << buf << token_display(lm, t.source) << " ... " << token_display(lm, t.destination) << " -> "
      << token_display(lm, t.out) << "\n";
  }
  std::cout << s.str();
  return 0;
}

}  // namespace cs::cli
