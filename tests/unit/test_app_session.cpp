// The page's session (src/app/session.h), natively: a model loaded from file
// bytes through the session's sliced load job equals the one-shot loader's;
// bad files leave the shown model; raw weights; cancel; model-change notices.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "app/session.h"
#include "core/error.h"
#include "core/model.h"
#include "io/model_io.h"
#include "app_test_helpers.h"
#include "test_models.h"

namespace cs::app {
namespace {

using apptest::run_jobs;
using apptest::stage;

Model small_model(uint64_t seed, int d_vocab = 50, Norm norm = Norm::LN) {
  ModelConfig c;
  c.n_layers = 1;
  c.d_model = 8;
  c.n_heads = 2;
  c.d_head = 4;
  c.n_ctx = 8;
  c.d_vocab = d_vocab;
  c.normalization = norm;
  c.name = "small-" + std::to_string(seed);
  Model m(c);
  randomize(m, seed, 0.5f);
  return m;
}

std::vector<float> params(const Model& m) { return std::vector<float>(m.data(), m.data() + m.size()); }

TEST(AppSession, LoadsAModelFromBytesThroughItsJob) {
  const Model m = small_model(3);
  const FileSet files = save_model(m);
  Session s;
  std::vector<ModelChange> changes;
  s.set_model_listener([&](ModelChange c) { changes.push_back(c); });
  EXPECT_EQ(s.shown(), nullptr);
  stage(s, files);
  s.load_staged("file:model.safetensors", "model.safetensors", "", "files");
  EXPECT_TRUE(s.loading());
  EXPECT_EQ(s.shown(), nullptr) << "nothing shown until the load finishes";
  run_jobs(s);
  EXPECT_EQ(s.error(), "");
  ASSERT_NE(s.shown(), nullptr);
  EXPECT_EQ(changes, std::vector<ModelChange>{ModelChange::NewModel});
  EXPECT_EQ(s.active()->title, m.config().name) << "a user's file is titled by its config's name";
  EXPECT_EQ(s.vocab(), 50);
  // The sliced load equals the one-shot loader (processed weights; within
  // float rounding: how the processing is sliced may reorder its sums).
  const LoadedModel once = load_model(files);
  EXPECT_TRUE(s.shown()->model.processing.any());
  const std::vector<float> a = params(s.shown()->model), b = params(once.model);
  ASSERT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, double(std::abs(a[i] - b[i])));
  EXPECT_LE(worst, 1e-5);
  EXPECT_EQ(s.token_display(7), "#7");
  const TokenMatches t = s.find_tokens("#12");
  EXPECT_EQ(t.ids, std::vector<int>{12});
}

TEST(AppSession, AModelWithoutATokenizerReadsTokenIds) {
  Session s;
  stage(s, save_model(small_model(4)));
  s.load_staged("file:model.safetensors", "model.safetensors", "", "files");
  run_jobs(s);
  ASSERT_NE(s.shown(), nullptr);
  const LoadedModel& m = *s.shown();
  EXPECT_EQ(m.warnings, std::vector<std::string>{kNoTokenizerWarning}) << "one line on the card says so";
  EXPECT_EQ(text_tokens(m, "5 #12, 49\n0"), (std::vector<int>{5, 12, 49, 0}));
  auto why = [&m](const std::string& text) {
    try {
      text_tokens(m, text);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_NE(why("5 cat").find("type token ids below 50 separated by spaces"), std::string::npos) << why("5 cat");
  EXPECT_NE(why("50").find("\"50\" is not one"), std::string::npos) << why("50");
  EXPECT_NE(why(" ").find("type token ids"), std::string::npos) << why(" ");
  EXPECT_EQ(text_tokens(m, example_id_text(50)).size(), 12u);
  // The views' text: ids for this model, the user's text back with a tokenizer.
  TextAcrossModels across;
  std::string text = "some prose";
  across.on_model(&m, text);
  EXPECT_EQ(text, example_id_text(50));
  LoadedModel with = load_model(save_model(small_model(5), testmodels::wordlevel_tokenizer(50)));
  ASSERT_TRUE(with.tokenizer);
  across.on_model(&with, text);
  EXPECT_EQ(text, "some prose");
  std::string ids = "1 2 3";
  across.on_model(&m, ids);
  EXPECT_EQ(ids, "1 2 3") << "ids are kept";
}

TEST(AppSession, AFileLargerThanThePageHoldsIsRefusedBySize) {
  Session s;
  EXPECT_TRUE(s.check_file_size("model.safetensors", Session::kMaxFileBytes));
  EXPECT_EQ(s.error(), "");
  EXPECT_FALSE(s.check_file_size("model.safetensors", 5.2e9));
  EXPECT_EQ(s.error(), "model.safetensors is 5.2 GB; the page holds files up to 2.1 GB");
  EXPECT_EQ(byte_size_text(12), "12 bytes");
  EXPECT_EQ(byte_size_text(4100), "4.1 kB");
  EXPECT_EQ(byte_size_text(12.34e6), "12.3 MB");
}

TEST(AppSession, RawWeightsAreLoadedOnDemandAndNotified) {
  const Model m = small_model(4);
  const FileSet files = save_model(m);
  Session s;
  std::vector<ModelChange> changes;
  s.set_model_listener([&](ModelChange c) { changes.push_back(c); });
  stage(s, files);
  s.load_staged("a", "A", "", "bundled");
  run_jobs(s);
  const uint64_t g = s.generation();
  s.set_raw(true);
  EXPECT_TRUE(s.raw_pending());
  run_jobs(s);
  EXPECT_FALSE(s.raw_pending());
  ASSERT_NE(s.shown(), nullptr);
  EXPECT_FALSE(s.shown()->model.processing.any());
  EXPECT_EQ(params(s.shown()->model), params(m)) << "raw = as stored";
  EXPECT_GT(s.generation(), g);
  EXPECT_EQ(changes, (std::vector<ModelChange>{ModelChange::NewModel, ModelChange::Weights}));
  s.set_raw(false);
  EXPECT_TRUE(s.shown()->model.processing.any());
  EXPECT_EQ(changes.back(), ModelChange::Weights);
}

TEST(AppSession, ABadFileOrCancelKeepsTheShownModel) {
  Session s;
  stage(s, save_model(small_model(5)));
  s.load_staged("good", "Good", "", "bundled");
  run_jobs(s);
  ASSERT_NE(s.active(), nullptr);
  const uint64_t g = s.generation();

  // Not a safetensors file inside: a one-line reason, the model stays.
  FileSet bad;
  bad["model.safetensors"] = std::vector<uint8_t>(16, 0xFF);
  stage(s, bad);
  s.load_staged("bad", "Bad", "", "files");
  run_jobs(s);
  EXPECT_NE(s.error(), "");
  EXPECT_EQ(s.error().find('\n'), std::string::npos);
  EXPECT_EQ(s.active()->id, "good");
  EXPECT_EQ(s.generation(), g);

  // No weights among the files.
  s.clear_error();
  FileSet only_config;
  only_config["config.json"] = {'{', '}'};
  stage(s, only_config);
  s.load_staged("cfg", "Cfg", "", "files");
  EXPECT_NE(s.error().find("no weights file (.safetensors, .pth)"), std::string::npos) << s.error();
  EXPECT_EQ(s.active()->id, "good");

  // Cancel part way.
  s.clear_error();
  stage(s, save_model(small_model(6, 4000)));
  s.load_staged("big", "Big", "", "bundled");
  s.tick(0);  // one unit
  ASSERT_TRUE(s.loading());
  s.cancel_load();
  EXPECT_FALSE(s.loading());
  run_jobs(s);
  EXPECT_EQ(s.active()->id, "good");
  EXPECT_EQ(s.error(), "");
}

// The bundled-model picker shows the bundled model on screen however it was
// loaded (its own Load button, a link, a script), until the user picks another.
TEST(AppSession, TheBundledPickerFollowsTheBundledModelShown) {
  Session s;
  s.set_bundled_index(R"([{"id": "zero", "title": "Zero", "files": ["a"]},
                          {"id": "one", "title": "One", "files": ["a"]},
                          {"id": "two", "title": "Two", "files": ["a"]}])");
  ASSERT_EQ(s.bundled().size(), 3u);
  EXPECT_EQ(s.bundled_pick(), 0) << "the first until anything is shown";
  stage(s, save_model(small_model(5)));
  s.load_staged("two", "Two", "", "bundled");
  run_jobs(s);
  ASSERT_EQ(s.active()->id, "two");
  EXPECT_EQ(s.bundled_pick(), 2);
  s.pick_bundled(1);  // the user picks another, not loaded yet
  EXPECT_EQ(s.bundled_pick(), 1);
  stage(s, save_model(small_model(6)));
  s.load_staged("file:model.safetensors", "Mine", "", "files");  // the user's files: the pick stays
  run_jobs(s);
  EXPECT_EQ(s.bundled_pick(), 1);
  stage(s, save_model(small_model(7)));
  s.load_staged("zero", "Zero", "", "bundled");
  run_jobs(s);
  EXPECT_EQ(s.bundled_pick(), 0);
}

}  // namespace
}  // namespace cs::app
