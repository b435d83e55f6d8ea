// circuitscope: command line over the same core as the page.
// Dispatches to one subcommand; maps errors to exit codes (2 usage, 1 data)
// and ONE stderr line "circuitscope: <reason>".
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "cli/cli_common.h"
#include "core/error.h"
#include "core/memory.h"
#include "core/sliced.h"

namespace cs::cli {
int cmd_tokenizer_train(const std::vector<std::string>& args);  // tokenizer_train.cpp
int cmd_encode(const std::vector<std::string>& args);           // encode.cpp
int cmd_train(const std::vector<std::string>& args);            // train.cpp
int cmd_convert(const std::vector<std::string>& args);          // convert.cpp
}  // namespace cs::cli

namespace {

struct Command {
  const char* name;
  int (*run)(const std::vector<std::string>&);
  const char* synopsis;
};

const Command kCommands[] = {
    {"info", cs::cli::cmd_info, "info MODEL [--json] [--raw]"},
    {"run", cs::cli::cmd_run,
     "run MODEL (--text TEXT | --ids 1,2,3) [--json] [--logits] [--patterns] [--raw] [--no-bos] [--ablate L.H,...]"},
    {"bigrams", cs::cli::cmd_bigrams, "bigrams MODEL (--token TEXT | --id N) [--top K] [--reverse] [--json] [--raw]"},
    {"heads", cs::cli::cmd_heads, "heads MODEL [--json] [--raw] [--no-embed-norm] [--seed S] [--no-diagonal]"},
    {"ov", cs::cli::cmd_ov,
     "ov MODEL --head L.H [--through L.H] (--source ID | --out ID) [--top K] [--json] [--raw] [--no-embed-norm]"},
    {"qk", cs::cli::cmd_qk,
     "qk MODEL --head L.H (--destination ID | --source ID) [--top K] [--json] [--raw] [--no-embed-norm]"},
    {"skip-trigrams", cs::cli::cmd_skip_trigrams,
     "skip-trigrams MODEL --head L.H [--top N] [--source ID] [--destination ID] [--out ID] [--per-source K] "
     "[--sources K] [--json] [--raw] [--no-embed-norm]"},
    {"composition", cs::cli::cmd_composition, "composition MODEL [--json] [--raw] [--seed S] [--samples N]"},
    {"virtual", cs::cli::cmd_virtual, "virtual MODEL [--top N] [--json] [--raw] [--no-embed-norm]"},
    {"terms", cs::cli::cmd_terms,
     "terms MODEL (--text TEXT | --ids 1,2,3) [--json] [--raw] [--no-bos] [--max-order K]"},
    {"paths", cs::cli::cmd_paths,
     "paths MODEL (--text TEXT | --ids 1,2,3) [--position P] [--token ID] [--json] [--raw] [--no-bos] [--max-order K]"},
    {"detect", cs::cli::cmd_detect,
     "detect MODEL (--text TEXT | --ids 1,2,3) [--json] [--raw] [--no-bos] [--exclude-bos] [--exclude-current]"},
    {"induction", cs::cli::cmd_induction,
     "induction MODEL [--json] [--raw] [--seed S] [--tokens N] [--repeats R] [--examples E] [--prev L.H] [--no-embed-norm] [--text TEXT | --ids 1,2,3] [--no-bos]"},
    {"report", cs::cli::cmd_report,
     "report MODEL [--json] [--raw] [--no-embed-norm] [--no-diagonal] [--top N]"},
    {"make-demo", cs::cli::cmd_make_demo, "make-demo OUTDIR [--corpus DIR]"},
    {"make-random", cs::cli::cmd_make_random,
     "make-random OUTDIR [--layers N] [--d-model N] [--heads N] [--d-head N] [--ctx N] [--vocab N] "
     "[--pos standard|shortformer|none] [--norm none|LN] [--seed S] [--std X] [--f16]"},
    {"tokenizer-train", cs::cli::cmd_tokenizer_train,
     "tokenizer-train CORPUS.txt --vocab N --out tokenizer.json [--min-frequency K] [--allow-invalid] [--threads N] "
     "[--json]"},
    {"encode", cs::cli::cmd_encode,
     "encode CORPUS.txt --tokenizer TOKENIZER.json --out ids.bin [--allow-invalid] [--threads N] [--json]"},
    {"train", cs::cli::cmd_train,
     "train --out DIR [--data IDS] [--heldout IDS] [--tokenizer T.json] [--config C.json] [--layers N] [--d-model N] "
     "[--heads N] [--d-head N] [--ctx N] [--vocab N] [--norm LN|none] [--pos shortformer|standard|none] "
     "[--steps N] [--batch N] [--lr X] [--warmup N] [--seed S] [--threads N] [--curriculum repeat:2000,text:3000] "
     "[--log FILE] [--eval-every N] [--save-every N] [--bos N|none] | train --resume DIR [--steps N]"},
    {"convert", cs::cli::cmd_convert, "convert IN OUT [--f16] [--name NAME] [--json]"},
};

// "info, run, ..." from the table above.
std::string command_names() {
  std::string s;
  for (const auto& c : kCommands) s += (s.empty() ? "" : ", ") + std::string(c.name);
  return s;
}

void usage(std::ostream& out) {
  out << "usage: circuitscope <command> ...\n"
         "MODEL is a folder (model.safetensors or model_final.pth / any .pth, config.json, tokenizer.json),\n"
         "one .safetensors file, or a .pth file with config.json beside it.\n"
         "--raw: weights exactly as stored (default: TransformerLens weight processing).\n"
         "--threads N: the cores an analysis uses (default: all of them); results do not depend on it.\n";
  for (const auto& c : kCommands) out << "  circuitscope " << c.synopsis << "\n";
}

// Takes the global `--threads N` (or --threads=N) out of an analysis command's
// words and sets the analyses' thread count (core/sliced.h); the commands with
// their own --threads (train, tokenizer-train, encode) read it themselves.
void take_threads_option(const Command& cmd, std::vector<std::string>& words) {
  if (std::string(cmd.synopsis).find("--threads") != std::string::npos) return;
  for (size_t i = 0; i < words.size(); ++i) {
    std::string value;
    size_t n = 1;
    if (words[i] == "--threads") {
      if (i + 1 >= words.size()) throw cs::cli::UsageError("--threads needs a value");
      value = words[i + 1];
      n = 2;
    } else if (words[i].starts_with("--threads=")) {
      value = words[i].substr(10);
    } else {
      continue;
    }
    cs::set_analysis_threads(int(cs::cli::parse_int(value, "--threads", 1, 1024)));
    words.erase(words.begin() + std::ptrdiff_t(i), words.begin() + std::ptrdiff_t(i + n));
    --i;
  }
}

// One line: newlines in a reason would break the "one stderr line" contract.
std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

int fail(int code, const std::string& reason) {
  std::cerr << "circuitscope: " << one_line(reason) << std::endl;
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  cs::keep_freed_memory();
  std::vector<std::string> words(argv + 1, argv + argc);
  if (words.empty()) return fail(2, "missing command (" + command_names() + "; --help)");
  if (words[0] == "--help" || words[0] == "-h" || words[0] == "help") {
    usage(std::cout);
    return 0;
  }
  const Command* cmd = nullptr;
  for (const auto& c : kCommands)
    if (words[0] == c.name) cmd = &c;
  if (!cmd) return fail(2, "unknown command '" + words[0] + "' (" + command_names() + ")");
  std::vector<std::string> rest(words.begin() + 1, words.end());
  try {
    take_threads_option(*cmd, rest);
    return cmd->run(rest);
  } catch (const cs::cli::UsageError& e) {
    return fail(2, std::string(cmd->name) + ": " + e.what() + " (usage: circuitscope " + cmd->synopsis + ")");
  } catch (const cs::Error& e) {
    return fail(1, e.what());
  } catch (const nlohmann::json::exception& e) {
    return fail(1, std::string("JSON: ") + e.what());
  } catch (const std::bad_alloc&) {
    return fail(1, "out of memory");
  } catch (const std::exception& e) {
    return fail(1, e.what());
  }
}
