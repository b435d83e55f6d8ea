// `circuitscope detect MODEL (--text TEXT | --ids 1,2,3) [--json] [--raw] [--no-bos]
//                     [--exclude-bos] [--exclude-current]`
// Head detector scores on one sequence (core/head_detector.h; definitions in
// docs/two-layer.md): how much of each head's attention follows the
// previous-token, duplicate-token and induction patterns (TransformerLens'
// detect_head, "mul").
// JSON: {"weights", "ids": [..], "previous_token": [layer][head],
//        "duplicate_token": [layer][head], "induction": [layer][head]}
#include <cstdio>
#include <iostream>
#include <sstream>

#include "cli/cli_common.h"
#include "core/head_detector.h"
#include "io/json_out.h"

namespace cs::cli {

int cmd_detect(const std::vector<std::string>& words) {
  Args args(words, {{"--json", "--raw", "--no-bos", "--exclude-bos", "--exclude-current"}, {"--text", "--ids"}});
  args.expect_positional(1, "MODEL");
  check_input_args(args);
  const LoadedModel lm = load_model_arg(args.positional()[0], args.has("--raw"));
  const std::vector<int> ids = input_ids(args, lm);
  DetectorOptions opt;
  opt.exclude_bos = args.has("--exclude-bos");
  opt.exclude_current_token = args.has("--exclude-current");
  const DetectorScores s = detect_heads(lm.model, {ids}, opt);
  const HeadPattern kinds[] = {HeadPattern::PreviousToken, HeadPattern::DuplicateToken, HeadPattern::Induction};
  const ModelConfig& c = lm.model.config();

  if (args.has("--json")) {
    Json j;
    j["weights"] = weights_kind(lm.model);
    j["ids"] = ids;
    for (HeadPattern k : kinds) j[to_string(k)] = matrix_json(s.of(k));
    print_json(std::cout, j, 2);
    return 0;
  }
  std::ostringstream o;
  o << "head detector on " << ids.size() << " tokens (attention share on each pattern; docs/two-layer.md)\n"
    << "head   previous  duplicate  induction\n";
  for (int l = 0; l < c.n_layers; ++l)
    for (int h = 0; h < c.n_heads; ++h) {
      char buf[96];
      std::snprintf(buf, sizeof buf, "%d.%-4d %8.3f  %9.3f  %9.3f\n", l, h, double(s.previous_token(l, h)),
                    double(s.duplicate_token(l, h)), double(s.induction(l, h)));
      o << buf;
    }
  std::cout << o.str();
  return 0;
}

}  // namespace cs::cli
