// Tables as CSV and JSON (export.h).
#include "app/export.h"

#include <cmath>

#include "app/session.h"
#include "core/error.h"

namespace cs::app {

namespace {

std::string csv_field(const Json& v) {
  if (v.is_null()) return {};
  if (v.is_number_float() && !std::isfinite(v.get<double>())) return {};  // NaN: not computed
  if (!v.is_string()) return dump(v);  // numbers and booleans as the JSON writes them
  const std::string s = v.get<std::string>();
  const bool quote = s.find_first_of(",\"\r\n") != std::string::npos ||
                     (!s.empty() && (s.front() == ' ' || s.back() == ' '));
  if (!quote) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string csv_line(const std::vector<Json>& fields) {
  std::string line;
  for (size_t i = 0; i < fields.size(); ++i) line += (i ? "," : "") + csv_field(fields[i]);
  return line + "\r\n";
}

std::string file_part(std::string_view s) {
  std::string out;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_';
    if (ok) out += c;
    else if (out.empty() || out.back() != '-') out += '-';
    if (out.size() >= 60) break;
  }
  while (!out.empty() && (out.back() == '-' || out.back() == '.')) out.pop_back();
  while (!out.empty() && (out.front() == '-' || out.front() == '.')) out.erase(out.begin());
  return out.empty() ? "x" : out;
}

}  // namespace

std::string to_csv(const ExportTable& t) {
  std::vector<Json> header(t.columns.begin(), t.columns.end());
  std::string out = csv_line(header);
  for (const auto& row : t.rows) {
    if (row.size() != t.columns.size())
      throw Error("internal: table '" + t.name + "' has a row of " + std::to_string(row.size()) + " fields for " +
                  std::to_string(t.columns.size()) + " columns");
    out += csv_line(row);
  }
  return out;
}

Json to_json(const ExportTable& t) {
  Json rows = Json::array();
  for (const auto& r : t.rows) rows.push_back(Json(r));
  return Json{{"table", t.name}, {"title", t.title}, {"columns", t.columns}, {"rows", std::move(rows)}};
}

ExportTable ranked_table(std::string name, std::string title, const std::vector<Ranked>& list,
                         const TokenDisplay& display) {
  ExportTable t{std::move(name), std::move(title), {"rank", "id", "token", "logit", "probability"}, {}};
  for (size_t i = 0; i < list.size(); ++i)
    t.rows.push_back({Json(i + 1), Json(list[i].id), Json(display(list[i].id)), Json(list[i].logit), Json(list[i].prob)});
  return t;
}

ExportTable token_values_table(std::string name, std::string title, const std::string& value_column, const Json& list) {
  ExportTable t{std::move(name), std::move(title), {"rank", "id", "token", value_column}, {}};
  for (size_t i = 0; i < list.size(); ++i)
    t.rows.push_back({Json(i + 1), list[i].at("id"), list[i].at("token"), list[i].at("value")});
  return t;
}

void add_eigenvalue_rows(ExportTable& t, const std::string& circuit, const Json& list) {
  for (size_t i = 0; i < list.size(); ++i) {
    const double re = list[i].at(0).get<double>(), im = list[i].at(1).get<double>();
    t.rows.push_back({Json(circuit), Json(i + 1), list[i].at(0), list[i].at(1), Json(float(std::hypot(re, im)))});
  }
}

ExportTable matrix_table(std::string name, std::string title, const std::string& corner,
                         const std::vector<std::string>& row_labels, const std::vector<std::string>& col_labels,
                         const Json& matrix) {
  ExportTable t{std::move(name), std::move(title), {corner}, {}};
  for (const std::string& c : col_labels) t.columns.push_back(c);
  for (size_t i = 0; i < matrix.size() && i < row_labels.size(); ++i) {
    std::vector<Json> row{Json(row_labels[i])};
    for (size_t j = 0; j < col_labels.size(); ++j) row.push_back(j < matrix[i].size() ? matrix[i][j] : Json(nullptr));
    t.rows.push_back(std::move(row));
  }
  return t;
}

Json export_json(const ExportTable& t, std::string_view model, std::string_view view, std::string_view weights) {
  Json j{{"model", model}, {"view", view}, {"weights", weights}};
  const Json table = to_json(t);
  for (const auto& [k, v] : table.items()) j[k] = v;
  return j;
}

std::string export_model_name(const Session& s) {
  const ActiveModel* a = s.active();
  if (!a) return "model";
  return a->id.starts_with("file:") ? a->title : a->id;
}

std::string export_file_name(std::string_view model, std::string_view view, std::string_view table,
                             std::string_view ext) {
  return file_part(model) + "_" + file_part(view) + "_" + file_part(table) + "." + file_part(ext);
}

}  // namespace cs::app
