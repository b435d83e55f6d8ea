// Exports (app/export.h): CSV as RFC 4180 reads it (checked by a parser
// written here), JSON tables, file names, and the tables a view lists equal
// what it holds and draws, and the naive dense computation.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "app/app.h"
#include "app/bigram_view.h"
#include "app/export.h"
#include "app/train_view.h"
#include "app_test_helpers.h"
#include "naive_reference.h"
#include "test_models.h"

namespace cs::app {
namespace {

// RFC 4180, independently: fields separated by commas, records by CRLF, a
// quoted field may hold commas, CR, LF and "" for a quote.
std::vector<std::vector<std::string>> parse_csv(const std::string& text) {
  std::vector<std::vector<std::string>> records;
  std::vector<std::string> record;
  std::string field;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == '"') {
      ++i;
      while (true) {
        EXPECT_LT(i, text.size()) << "unterminated quote";
        if (i >= text.size()) return records;
        if (text[i] == '"' && i + 1 < text.size() && text[i + 1] == '"') { field += '"'; i += 2; continue; }
        if (text[i] == '"') { ++i; break; }
        field += text[i++];
      }
    } else if (text[i] == ',') {
      record.push_back(field);
      field.clear();
      ++i;
    } else if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
      record.push_back(field);
      field.clear();
      records.push_back(record);
      record.clear();
      i += 2;
    } else {
      field += text[i++];
    }
  }
  EXPECT_TRUE(record.empty() && field.empty()) << "the last record ends with CRLF";
  return records;
}

TEST(Export, CsvQuotesOnlyWhatNeedsIt) {
  ExportTable t{"t", "T", {"a", "b, c"}, {}};
  t.rows.push_back({Json("plain"), Json(" the")});
  t.rows.push_back({Json("say \"hi\""), Json("two\nlines")});
  t.rows.push_back({Json(nullptr), Json(1.5f)});
  t.rows.push_back({Json(-3), Json(true)});
  EXPECT_EQ(to_csv(t),
            "a,\"b, c\"\r\n"
            "plain,\" the\"\r\n"
            "\"say \"\"hi\"\"\",\"two\nlines\"\r\n"
            ",1.5\r\n"
            "-3,true\r\n");
}

TEST(Export, CsvRoundTripsAnyText) {
  uint64_t state = 99;
  auto next = [&] { return state = state * 6364136223846793005ull + 1442695040888963407ull; };
  const std::string alphabet = "ab ,\"\r\n=+-@\t\xE2\x90\xA3";
  ExportTable t{"t", "T", {"x", "y", "z"}, {}};
  for (int r = 0; r < 200; ++r) {
    std::vector<Json> row;
    for (int c = 0; c < 3; ++c) {
      std::string s;
      for (int k = int(next() >> 60); k-- > 0;) s += alphabet[(next() >> 33) % alphabet.size()];
      row.push_back(Json(s));
    }
    t.rows.push_back(row);
  }
  const auto parsed = parse_csv(to_csv(t));
  ASSERT_EQ(parsed.size(), t.rows.size() + 1);
  EXPECT_EQ(parsed[0], (std::vector<std::string>{"x", "y", "z"}));
  for (size_t r = 0; r < t.rows.size(); ++r)
    for (size_t c = 0; c < 3; ++c) EXPECT_EQ(parsed[r + 1][c], t.rows[r][c].get<std::string>()) << r << "," << c;
}

TEST(Export, JsonAndFileNames) {
  ExportTable t{"next-tokens", "Next", {"id", "token"}, {{Json(3), Json("<b>")}}};
  const Json j = export_json(t, "attn-only-2l", "bigram", "processed");
  EXPECT_EQ(j["model"], "attn-only-2l");
  EXPECT_EQ(j["weights"], "processed");
  EXPECT_EQ(j["columns"], Json({"id", "token"}));
  EXPECT_EQ(j["rows"][0][1], "<b>");
  EXPECT_EQ(export_file_name("attn-only-2l", "bigram", "next-tokens", "csv"), "attn-only-2l_bigram_next-tokens.csv");
  EXPECT_EQ(export_file_name("my model/(v2)", "head", "ov/out", "json"), "my-model-v2_head_ov-out.json");
  EXPECT_EQ(export_file_name("../../etc/passwd", "", "\xE2\x90\xA3", "csv"), "etc-passwd_x_x.csv");
  const ExportTable bad{"b", "B", {"one"}, {{Json(1), Json(2)}}};
  EXPECT_THROW(to_csv(bad), Error);
}

TEST(Export, BigramTablesAreWhatTheViewHoldsAndTheNaiveTable) {
  App a;
  const Model m = testmodels::small_ln_model(1, 40, 5, 0.6f);
  apptest::load(a, m);
  Session& s = a.session();
  BigramView& v = *a.view<BigramView>();
  v.select_source(s, 7);
  v.set_top_k(s, 5);
  v.select_next(s, 11);
  v.clear_block_tokens(s);
  v.add_block_tokens(s, {3, 17, 9});
  apptest::run_jobs(s);
  const naive::Mat table = naive::bigram_table(s.shown()->model);
  const std::vector<ExportTable> tables = v.tables(s);
  ASSERT_EQ(tables.size(), 3u);
  EXPECT_EQ(tables[0].name, "next-tokens");
  EXPECT_EQ(tables[1].name, "current-tokens");
  EXPECT_EQ(tables[2].name, "heatmap");
  const Json held = v.state_json(s);
  const auto parsed = parse_csv(to_csv(tables[0]));
  ASSERT_EQ(parsed.size(), 6u);
  for (size_t i = 0; i < 5; ++i) {
    const Json& r = held["top_next"]["value"][i];
    EXPECT_EQ(parsed[i + 1][0], std::to_string(i + 1));
    EXPECT_EQ(parsed[i + 1][1], std::to_string(r["id"].get<int>()));
    EXPECT_EQ(parsed[i + 1][2], r["token"].get<std::string>());
    EXPECT_EQ(std::stof(parsed[i + 1][3]), r["logit"].get<float>()) << "the shortest text reads back to the same float";
    EXPECT_NEAR(std::stod(parsed[i + 1][3]), table[7][size_t(r["id"].get<int>())], 1e-4);
    EXPECT_EQ(std::stof(parsed[i + 1][4]), r["prob"].get<float>());
  }
  EXPECT_EQ(tables[1].rows.size(), 10u);
  const int ids[] = {3, 17, 9};
  ASSERT_EQ(tables[2].rows.size(), 3u);
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(tables[2].rows[size_t(r)][0], s.token_display(ids[r]));
    for (int c = 0; c < 3; ++c)
      EXPECT_NEAR(tables[2].rows[size_t(r)][size_t(c) + 1].get<double>(), table[size_t(ids[r])][size_t(ids[c])], 1e-4);
  }
}

TEST(Export, HeadsTablesAreWhatTheGridHolds) {
  App a;
  apptest::load(a, testmodels::small_ln_model(2, 16, 8, 0.6f));
  Session& s = a.session();
  a.show(*a.find("heads"));
  apptest::run_jobs(s);
  const Json held = a.find("heads")->state_json(s)["summary"]["value"];
  const std::vector<ExportTable> tables = a.find("heads")->tables(s);
  ASSERT_EQ(tables.size(), 2u);
  const ExportTable& t = tables[0];
  ASSERT_EQ(t.rows.size(), held.size());
  ASSERT_GT(t.rows.size(), 2u);
  size_t eig = 0;
  for (size_t r = 0; r < t.rows.size(); ++r) {
    EXPECT_EQ(t.rows[r][0], std::to_string(held[r]["layer"].get<int>()) + "." + std::to_string(held[r]["head"].get<int>()));
    for (size_t c = 3; c < t.columns.size(); ++c) EXPECT_EQ(t.rows[r][c], held[r][t.columns[c]]) << t.columns[c];
    eig += held[r]["ov_eigenvalues"].size() + held[r]["qk_eigenvalues"].size();
  }
  EXPECT_EQ(tables[1].rows.size(), eig);
}

TEST(Export, EveryViewListsWhatItComputed) {
  App a;
  apptest::load(a, testmodels::small_ln_model(2, 128, 9, 0.6f), 1.0, testmodels::wordlevel_tokenizer(30));
  Session& s = a.session();
  ASSERT_EQ(s.vocab(), 30) << "the tokenizer fits the model";
  for (const auto& v : a.views()) {
    a.show(*v);
    apptest::run_jobs(s);
  }
  // The Train view computes when Train is pressed: a tiny run of 4 updates.
  TrainView& train = *a.view<TrainView>();
  train.set_selection_json(s, Json{{"steps", 4}, {"layers", 1}, {"heads", 2}, {"d_model", 16}, {"d_head", 8},
                                   {"n_ctx", 16}, {"vocab", 24}, {"batch", 2}, {"warmup", 1}, {"eval_every", 2}, {"min_len", 2},
                                   {"max_len", 7}});
  train.start(s);
  apptest::run_jobs(s);
  ASSERT_EQ(train.status(s), TrainView::Status::finished);
  ASSERT_EQ(s.error(), "");
  for (const auto& v : a.views()) {
    if (std::string(v->id()) == "test_only") continue;  // test_views.cpp's
    const std::vector<ExportTable> tables = v->tables(s);
    EXPECT_FALSE(tables.empty()) << v->id() << " lists no table once its work is done";
    for (const ExportTable& t : tables) {
      EXPECT_FALSE(t.rows.empty()) << v->id() << "/" << t.name;
      EXPECT_FALSE(t.title.empty());
      const auto parsed = parse_csv(to_csv(t));  // every row as long as the header (to_csv throws otherwise)
      EXPECT_EQ(parsed.size(), t.rows.size() + 1) << v->id() << "/" << t.name;
      EXPECT_EQ(export_file_name("m", v->id(), t.name, "csv").find('/'), std::string::npos);
    }
  }
}

TEST(Export, NothingComputedNoTables) {
  App a;
  EXPECT_TRUE(a.view<BigramView>()->tables(a.session()).empty());
}

}  // namespace
}  // namespace cs::app
