// Shared helpers of the command line (cli_common.h).
#include "cli/cli_common.h"

#include <charconv>
#include <filesystem>
#include <fstream>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <system_error>

#include "core/error.h"
#include "io/pth.h"

namespace cs::cli {

namespace fs = std::filesystem;

Args::Args(const std::vector<std::string>& args, const OptionSpec& spec) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.size() > 2 && a.rfind("--", 0) == 0) {
      std::string name = a, val;
      bool inline_value = false;
      if (auto eq = a.find('='); eq != std::string::npos) {
        name = a.substr(0, eq);
        val = a.substr(eq + 1);
        inline_value = true;
      }
      if (spec.switches.count(name)) {
        if (inline_value) throw UsageError(name + " takes no value");
        switches_.insert(name);
      } else if (spec.valued.count(name)) {
        if (!inline_value) {
          if (i + 1 >= args.size()) throw UsageError(name + " needs a value");
          val = args[++i];
        }
        if (values_.count(name)) throw UsageError(name + " given twice");
        values_[name] = val;
      } else {
        throw UsageError("unknown option '" + name + "'");
      }
    } else if (a == "--") {
      for (++i; i < args.size(); ++i) positional_.push_back(args[i]);
    } else {
      positional_.push_back(a);
    }
  }
}

bool Args::has(const std::string& name) const { return switches_.count(name) || values_.count(name); }

std::optional<std::string> Args::value(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

void Args::expect_positional(size_t n, const std::string& what) const {
  if (positional_.size() < n) throw UsageError("missing " + what);
  if (positional_.size() > n) throw UsageError("unexpected argument '" + positional_[n] + "'");
}

std::optional<int64_t> Args::integer(const std::string& name, int64_t min, int64_t max) const {
  auto v = value(name);
  if (!v) return std::nullopt;
  return parse_int(*v, name, min, max);
}

std::optional<double> Args::number(const std::string& name) const {
  auto v = value(name);
  if (!v) return std::nullopt;
  try {
    size_t used = 0;
    double d = std::stod(*v, &used);
    if (used == v->size()) return d;
  } catch (const std::exception&) {
  }
  throw UsageError(name + " '" + *v + "' is not a number");
}

int64_t parse_int(std::string_view text, const std::string& what, int64_t min, int64_t max) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size())
    throw UsageError(what + " '" + std::string(text) + "' is not an integer");
  if (v < min || v > max)
    throw UsageError(what + " " + std::to_string(v) + " is out of range [" + std::to_string(min) + ", " +
                     std::to_string(max) + "]");
  return v;
}

std::vector<int> parse_id_list(std::string_view text, const std::string& what) {
  std::vector<int> ids;
  size_t pos = 0;
  while (true) {
    size_t comma = text.find(',', pos);
    std::string_view item = text.substr(pos, comma == std::string_view::npos ? text.npos : comma - pos);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item.empty())
      throw UsageError(what + " '" + std::string(text) + "': empty item " + std::to_string(ids.size() + 1));
    ids.push_back(int(parse_int(item, what + " item " + std::to_string(ids.size() + 1), 0, INT32_MAX)));
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return ids;
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error("'" + path + "': no such file or folder");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("'" + path + "': cannot open");
  in.seekg(0, std::ios::end);
  std::streamoff n = in.tellg();
  if (n < 0) throw Error("'" + path + "': cannot read size");
  // Checked before the size becomes a size_t (32 bits in wasm: a 4 GB file would wrap).
  if (uint64_t(n) > kMaxFileBytes)
    throw Error("'" + path + "' is " + std::to_string(n) + " bytes; this build reads files up to " +
                std::to_string(kMaxFileBytes) + " bytes (one wasm32 buffer)");
  in.seekg(0);
  std::vector<uint8_t> bytes(static_cast<size_t>(n));
  if (n > 0 && !in.read(reinterpret_cast<char*>(bytes.data()), n)) throw Error("'" + path + "': read failed");
  return bytes;
}

FileSet read_model_files(const std::string& path) {
  std::error_code ec;
  fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) throw Error("model '" + path + "': no such file or folder");
  FileSet files;
  if (fs::is_directory(st)) {
    for (const auto& e : fs::directory_iterator(path, ec)) {
      if (e.is_regular_file()) files[e.path().filename().string()] = read_file(e.path().string());
    }
    if (ec) throw Error("model '" + path + "': cannot list folder (" + ec.message() + ")");
    if (files.empty()) throw Error("model '" + path + "': folder has no files");
  } else {
    files[fs::path(path).filename().string()] = read_file(path);
    // A PyTorch checkpoint carries no config: config.json (and tokenizer.json) come from beside it.
    if (is_pth_name(fs::path(path).filename().string()))
      for (const char* side : {"config.json", "tokenizer.json"}) {
        const fs::path p = fs::path(path).parent_path() / side;
        if (fs::is_regular_file(p, ec)) files[side] = read_file(p.string());
      }
  }
  return files;
}

LoadedModel load_model_arg(const std::string& path, bool raw) {
  LoadOptions opt;
  opt.process = !raw;
  return load_model(read_model_files(path), opt);
}

void write_files(const std::string& dir, const FileSet& files) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error("'" + dir + "': cannot create folder (" + ec.message() + ")");
  for (const auto& [name, bytes] : files) {
    std::string p = (fs::path(dir) / name).string();
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    if (!out) throw Error("'" + p + "': cannot open for writing");
    out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    if (!out) throw Error("'" + p + "': write failed");
  }
}

std::string token_display(const LoadedModel& lm, int id) {
  if (lm.tokenizer) return lm.tokenizer->display(id);
  return "#" + std::to_string(id);
}

TokenDisplay token_display_of(const LoadedModel& lm) {
  return [&lm](int id) { return token_display(lm, id); };
}

Json token_json(const LoadedModel& lm, int id) { return cs::token_json(id, token_display_of(lm)); }

void print_json(std::ostream& out, const Json& j, int indent) { out << dump_json(j, indent) << '\n'; }

HeadRef parse_head(std::string_view text, const std::string& option) {
  HeadRef h;
  h.text = std::string(text);
  h.option = option;
  const size_t dot = text.find('.');
  if (dot == std::string::npos) throw UsageError(option + " '" + h.text + "' is not LAYER.HEAD (e.g. 0.3)");
  h.layer = int(parse_int(text.substr(0, dot), option + " '" + h.text + "' layer", 0, INT32_MAX));
  h.head = int(parse_int(text.substr(dot + 1), option + " '" + h.text + "' head", 0, INT32_MAX));
  return h;
}

HeadRef head_syntax(const Args& args) {
  auto v = args.value("--head");
  if (!v) throw UsageError("--head LAYER.HEAD is required");
  return parse_head(*v, "--head");
}

std::vector<HeadRef> parse_head_list(std::string_view text, const std::string& option) {
  std::vector<HeadRef> out;
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    std::string_view item = text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item.empty()) throw UsageError(option + " '" + std::string(text) + "' has an empty item (expected L.H,L.H,...)");
    out.push_back(parse_head(item, option));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

void check_head(const HeadRef& h, const ModelConfig& c) {
  if (h.layer >= c.n_layers)
    throw Error(h.option + " " + h.text + ": layer " + std::to_string(h.layer) + " is outside [0, n_layers = " +
                std::to_string(c.n_layers) + ")");
  if (h.head >= c.n_heads)
    throw Error(h.option + " " + h.text + ": head " + std::to_string(h.head) + " is outside [0, n_heads = " +
                std::to_string(c.n_heads) + ")");
}

std::optional<int> token_id_option(const Args& args, const std::string& name) {
  auto v = args.value(name);
  if (!v) return std::nullopt;
  return int(parse_int(*v, name, 0, INT32_MAX));
}

void check_token_id(const std::string& name, int id, int bound, const char* bound_name) {
  if (id < 0 || id >= bound)
    throw Error(name + " " + std::to_string(id) + " is outside [0, " + bound_name + " = " + std::to_string(bound) +
                ")");
}

CircuitOptions circuit_options(const Args& args, const LoadedModel& lm) {
  return circuit_options(lm, !args.has("--no-embed-norm"));
}

int circuit_lookup(const std::vector<std::string>& words, const CircuitLookup& c) {
  OptionSpec spec{{"--json", "--raw", "--no-embed-norm"}, {"--head", c.row_flag, c.col_flag, "--top"}};
  if (c.virtual_matrix) spec.valued.insert("--through");
  Args args(words, spec);
  args.expect_positional(1, "MODEL");
  const HeadRef h = head_syntax(args);
  std::optional<HeadRef> through;
  if (auto t = args.value("--through")) through = parse_head(*t, "--through");
  if (args.has(c.row_flag) == args.has(c.col_flag))
    throw UsageError(std::string("give exactly one of ") + c.row_flag + " ID or " + c.col_flag + " ID");
  const int k = int(args.integer("--top", 1, 1'000'000).value_or(10));
  const bool row = args.has(c.row_flag);
  const char* flag = row ? c.row_flag : c.col_flag;
  const int id = *token_id_option(args, flag);

  LoadedModel lm = load_model_arg(args.positional()[0], args.has("--raw"));
  check_head(h, lm.model.config());
  if (through) check_head(*through, lm.model.config());
  const CircuitOptions opt = circuit_options(args, lm);
  const VocabMatrix M = through ? c.virtual_matrix(lm.model, through->layer, through->head, h.layer, h.head, opt)
                                : c.matrix(lm.model, h.layer, h.head, opt);
  check_token_id(flag, id, int(row ? M.n_rows() : M.n_cols()), row ? "d_vocab" : c.col_bound);
  std::vector<TokenValue> list;
  for (const IdValue& t : row ? M.row_top_k(id, k) : M.column_top_k(id, k)) list.push_back({t.id, t.value});
  const std::string key = flag + 2;  // "--source" -> "source"
  const char* listed = row ? c.row_listed : c.col_listed;

  if (args.has("--json")) {
    Json j;
    j["circuit"] = c.circuit;
    j["head"] = Json{{"layer", h.layer}, {"head", h.head}};
    if (through) j["through"] = Json{{"layer", through->layer}, {"head", through->head}};
    j["weights"] = weights_kind(lm.model);
    j["embed_norm"] = opt.normalize_embed;
    j[key] = token_json(lm, id);
    j["top"] = token_values_json(list, token_display_of(lm));
    print_json(std::cout, j, 2);
    return 0;
  }
  std::ostringstream s;
  s << c.circuit << " circuit of ";
  if (through) s << "the virtual head " << h.layer << "." << h.head << " o " << through->layer << "." << through->head;
  else s << "head " << h.layer << "." << h.head;
  s << ", " << key << " " << token_display(lm, id)
    << " (#" << id << "): top " << listed << ", " << weights_kind(lm.model) << " weights"
    << (opt.normalize_embed ? "" : ", W_E not normalized") << "\n";
  s << "rank  id      value       token\n";
  for (size_t i = 0; i < list.size(); ++i) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%4zu  %-6d  %10.5g  ", i + 1, list[i].id, double(list[i].value));
    s << buf << token_display(lm, list[i].id) << "\n";
  }
  std::cout << s.str();
  return 0;
}

void check_input_args(const Args& args) {
  if (args.has("--text") && args.has("--ids")) throw UsageError("give --text or --ids, not both");
  if (!args.has("--text") && !args.has("--ids")) throw UsageError("missing --text TEXT or --ids 1,2,3");
  if (args.has("--ids")) {
    if (args.has("--no-bos")) throw UsageError("--no-bos applies to --text only (--ids are used as given)");
    parse_id_list(*args.value("--ids"), "--ids");  // usage errors before the model is read
  }
}

std::vector<int> input_ids(const Args& args, const LoadedModel& lm) {
  auto text = args.value("--text");
  if (auto ids_text = args.value("--ids")) return parse_id_list(*ids_text, "--ids");
  if (!lm.tokenizer) throw Error("--text needs a tokenizer.json with the model; use --ids");
  return encode_prompt(lm, *text, !args.has("--no-bos"));
}

std::vector<std::vector<int>> input_windows(const Args& args, const LoadedModel& lm) {
  const std::vector<int> ids = input_ids(args, lm);
  const int bos = args.has("--text") && !args.has("--no-bos") ? bos_or_none(lm) : -1;
  std::vector<std::vector<int>> out = prompt_windows(ids, lm.model.config(), bos);
  if (out.empty()) throw Error("the input has " + std::to_string(ids.size()) + " token(s): nothing to predict");
  return out;
}

}  // namespace cs::cli
