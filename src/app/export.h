// What a view shows, as files a user takes away (docs/exports.md): each view
// lists its tables (View::tables, view.h) built from the results it holds
// and draws, and the page writes them as CSV or JSON under a name made of
// the model, the view and the table. Pure logic: the download itself is the
// shell's (platform::download).
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "app/json.h"
#include "core/direct_path.h"
#include "io/json_out.h"

namespace cs::app {

class Session;

// One table: a header and rows of numbers, strings, booleans or null, in the
// order and with the values the view shows.
struct ExportTable {
  std::string name;                     // short, for the file name: "next-tokens"
  std::string title;                    // what the view calls it: "Most likely next tokens after ' the'"
  std::vector<std::string> columns;
  std::vector<std::vector<Json>> rows;  // each as long as columns
};

// RFC 4180 CSV: a header line, then one line per row, CRLF line ends; a field
// is quoted ("" for a quote) when it holds a comma, quote, CR, LF, or starts
// or ends with a space (tokens such as " the" keep their space); numbers as
// the page's JSON writes them (shortest text that reads back to the same
// float); null and NaN (not computed) as an empty field. Strings are written as they are (no
// spreadsheet-formula escaping: a token "=x" stays "=x").
std::string to_csv(const ExportTable& t);
// {"table": name, "title", "columns": [...], "rows": [[...], ...]}.
Json to_json(const ExportTable& t);

// A ranked token list as the views draw it: rank, id, token, logit, probability.
ExportTable ranked_table(std::string name, std::string title, const std::vector<Ranked>& list,
                         const TokenDisplay& display);

// A list the views hold as token_values_json ([{"id","token","value"}]):
// rank, id, token, `value_column`.
ExportTable token_values_table(std::string name, std::string title, const std::string& value_column, const Json& list);
// Eigenvalues as complex_list_json holds them ([[re, im], ...]): `circuit`,
// rank, real, imaginary, modulus (rows appended to t).
void add_eigenvalue_rows(ExportTable& t, const std::string& circuit, const Json& list);
// A matrix as matrix_json holds it, rows labelled row_labels[i], columns col_labels[j].
ExportTable matrix_table(std::string name, std::string title, const std::string& corner,
                         const std::vector<std::string>& row_labels, const std::vector<std::string>& col_labels,
                         const Json& matrix);

// A table's JSON with where it came from: {"model", "view", "weights", ...to_json(t)}.
Json export_json(const ExportTable& t, std::string_view model, std::string_view view, std::string_view weights);

// The model part of download names: the bundled model's id, or the title of
// the user's own files; "model" with none shown.
std::string export_model_name(const Session& s);

// "<model>_<view>_<table>.<ext>" with every character outside [A-Za-z0-9._-]
// made '-', runs of '-' collapsed, each part at most 60 characters.
std::string export_file_name(std::string_view model, std::string_view view, std::string_view table,
                             std::string_view ext);

}  // namespace cs::app
