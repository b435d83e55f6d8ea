// Shared pieces of the `circuitscope` command line: argument parsing, reading a
// MODEL argument into a cs::FileSet, JSON output, token display. Each
// subcommand lives in its own cmd_*.cpp and is declared at the bottom.
//
// Error contract (main.cpp): a UsageError exits 2, a cs::Error (bad data,
// missing file) exits 1; either prints ONE line "circuitscope: <reason>" on
// stderr and nothing on stdout, so subcommands build their whole output
// before printing it.
#pragma once
#include <cstdint>
#include <iosfwd>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "core/circuits.h"
#include "core/vocab_matrix.h"
#include "io/json_out.h"
#include "io/model_io.h"

namespace cs::cli {

// The shared JSON type and writers (io/json_out.h): insertion-ordered keys,
// floats printed as the shortest decimal that reads back to the same float.
using cs::Json;

// Bad command line (exit code 2).
class UsageError : public std::runtime_error {
 public:
  explicit UsageError(const std::string& what) : std::runtime_error(what) {}
};

// Options of one subcommand: boolean switches and options taking one value
// ("--top 5" or "--top=5"). Anything else starting with "--" is a UsageError.
struct OptionSpec {
  std::set<std::string> switches;  // e.g. {"--json", "--raw"}
  std::set<std::string> valued;    // e.g. {"--top", "--ids"}
};

class Args {
 public:
  // args: the words after the subcommand name.
  Args(const std::vector<std::string>& args, const OptionSpec& spec);
  bool has(const std::string& name) const;  // switch given, or valued option given
  std::optional<std::string> value(const std::string& name) const;
  const std::vector<std::string>& positional() const { return positional_; }
  // Exactly n positional arguments, else UsageError naming what is expected.
  void expect_positional(size_t n, const std::string& what) const;

  // Typed values of valued options (UsageError naming the option on bad text).
  std::optional<int64_t> integer(const std::string& name, int64_t min, int64_t max) const;
  std::optional<double> number(const std::string& name) const;

 private:
  std::set<std::string> switches_;
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

// Strict integer parsing: the whole text must be a base-10 integer in [min, max].
// Throws UsageError("<what> ...") otherwise.
int64_t parse_int(std::string_view text, const std::string& what, int64_t min, int64_t max);
// "1,2,3" -> {1,2,3}; spaces around numbers allowed; empty items rejected (UsageError).
std::vector<int> parse_id_list(std::string_view text, const std::string& what);
// The input tokens of a command that takes --text TEXT | --ids 1,2,3 [--no-bos]:
// check_input_args before the model is read (UsageError: neither or both,
// --no-bos with --ids, a bad id list); input_ids then encodes --text with the
// model's tokenizer, its BOS first unless --no-bos (as TransformerLens), or
// returns --ids as given.
void check_input_args(const Args& args);
std::vector<int> input_ids(const Args& args, const LoadedModel& lm);
// The same input as windows of at most n_ctx tokens (models with positions;
// one window otherwise): consecutive slices of the encoded text, each after
// the first starting again with the BOS when the first did. Windows of one
// token (nothing to predict) are dropped.
std::vector<std::vector<int>> input_windows(const Args& args, const LoadedModel& lm);

// MODEL argument: a folder (every regular file in it, by base name) or one
// file (just that file; a .pth / .pt with the config.json and tokenizer.json
// beside it). Throws cs::Error when it cannot be read.
FileSet read_model_files(const std::string& path);
// read_model_files + load_model; raw = LoadOptions{process=false}.
LoadedModel load_model_arg(const std::string& path, bool raw);

// Whole file into memory; throws cs::Error naming the path.
std::vector<uint8_t> read_file(const std::string& path);
// Writes FileSet entries into dir (created if needed); throws cs::Error naming the path.
void write_files(const std::string& dir, const FileSet& files);

// Tokenizer::display(id) when there is a tokenizer, else "#id".
std::string token_display(const LoadedModel& lm, int id);
// token_display as a TokenDisplay (io/json_out.h); lm must outlive it.
TokenDisplay token_display_of(const LoadedModel& lm);
// {"id": id, "token": display}
Json token_json(const LoadedModel& lm, int id);

// Prints j (pretty when indent >= 0) followed by a newline.
void print_json(std::ostream& out, const Json& j, int indent = -1);

// ---- circuits commands (heads, ov, qk, skip-trigrams) ----------------------
// --head L.H: layer and head. head_syntax() checks the text (UsageError:
// "--head 'x' is not LAYER.HEAD"); check_head() the ranges against the model
// (cs::Error: "--head 3.0: layer 3 is outside [0, n_layers = 1)").
struct HeadRef {
  int layer = 0, head = 0;
  std::string text;              // as given
  std::string option = "--head";  // the option it came from, for messages
};
HeadRef head_syntax(const Args& args);
// "L.H" given to `option` (UsageError naming the option when it is not).
HeadRef parse_head(std::string_view text, const std::string& option);
// "L.H,L.H,..." (e.g. --ablate 0.1,1.3): each as parse_head; empty items rejected.
std::vector<HeadRef> parse_head_list(std::string_view text, const std::string& option);
void check_head(const HeadRef& h, const ModelConfig& c);
// An optional token id option (--source, --out, ...): syntax now (UsageError),
// then check_token_id against the vocabulary it indexes (cs::Error
// "--out 99 is outside [0, d_vocab_out = 40)").
std::optional<int> token_id_option(const Args& args, const std::string& name);
void check_token_id(const std::string& name, int id, int bound, const char* bound_name);
// CircuitOptions from --no-embed-norm (core/circuits.h), with lm's embed_stats.
CircuitOptions circuit_options(const Args& args, const LoadedModel& lm);

// `ov` / `qk`: one row or one column of a head's factored vocab x vocab
// circuit (core/vocab_matrix.h), its top K entries. The row flag picks a row
// (its entries listed over the columns), the column flag a column. JSON:
// {"circuit", "head": {"layer","head"}, "weights", "embed_norm",
//  <key of the given token>: {"id","token"}, "top": [{"id","token","value"}]};
// else a table.
struct CircuitLookup {
  const char* circuit;                 // "ov" | "qk"
  VocabMatrix (*matrix)(const Model&, int layer, int head, const CircuitOptions&);
  const char* row_flag;                // e.g. "--source": a row
  const char* row_listed;              // what a row's entries are, e.g. "out tokens"
  const char* col_flag;                // e.g. "--out": a column
  const char* col_listed;              // e.g. "source tokens"
  const char* col_bound;               // the columns' bound in messages: "d_vocab" | "d_vocab_out"
  // With --through L1.H1 (when set): the virtual head (--head) o (--through).
  VocabMatrix (*virtual_matrix)(const Model&, int l1, int h1, int l2, int h2, const CircuitOptions&) = nullptr;
};
int circuit_lookup(const std::vector<std::string>& words, const CircuitLookup& lookup);

// ---- subcommands: each returns the process exit code ----------------------
int cmd_info(const std::vector<std::string>& args);
int cmd_run(const std::vector<std::string>& args);
int cmd_bigrams(const std::vector<std::string>& args);
int cmd_make_demo(const std::vector<std::string>& args);
int cmd_make_random(const std::vector<std::string>& args);
int cmd_heads(const std::vector<std::string>& args);
int cmd_ov(const std::vector<std::string>& args);
int cmd_qk(const std::vector<std::string>& args);
int cmd_skip_trigrams(const std::vector<std::string>& args);
int cmd_composition(const std::vector<std::string>& args);
int cmd_virtual(const std::vector<std::string>& args);
int cmd_detect(const std::vector<std::string>& args);
int cmd_terms(const std::vector<std::string>& args);
int cmd_paths(const std::vector<std::string>& args);
int cmd_induction(const std::vector<std::string>& args);
int cmd_report(const std::vector<std::string>& args);

}  // namespace cs::cli
