// The training loop (src/train/trainer.h, data.h): schedule values against the
// formula, AdamW against updates computed here in double, the data sources'
// layouts, config JSON, bit-identical resume from an in-memory checkpoint,
// divergence (NaN) stopping with the last good checkpoint kept, interruption,
// and the log line. Small models so the whole file runs in about a second.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <numbers>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/safetensors.h"
#include "train/data.h"
#include "train/trainer.h"

namespace cs::train {
namespace {

// A tiny 2-layer model and a curriculum crossing from repeated random tokens
// to text, so a resume point inside each phase is covered.
TrainConfig tiny_config() {
  TrainConfig c;
  c.model.n_layers = 2;
  c.model.d_model = 16;
  c.model.n_heads = 2;
  c.model.d_head = 8;
  c.model.n_ctx = 12;
  c.model.d_vocab = 23;
  c.model.positional = PosEmbed::Shortformer;
  c.model.normalization = Norm::LN;
  c.batch = 4;
  c.steps = 8;
  c.lr = 3e-3;
  c.warmup = 2;
  c.seed = 99;
  c.threads = 2;
  c.bos = 0;
  c.log_every = 1;
  c.eval_every = 4;
  c.save_every = 4;
  c.eval_windows = 3;
  c.eval_examples = 2;
  c.curriculum = {DataPhase{"repeated-random", 3, 2, 5}, DataPhase{"text", 0}};
  return c;
}

// A token stream with some structure (a noisy cycle), ids 1..22 (0 is BOS).
std::vector<int> stream(int n, uint64_t seed) {
  Rng r(seed);
  std::vector<int> ids;
  int t = 1;
  for (int i = 0; i < n; ++i) {
    t = r.below(4) == 0 ? 1 + int(r.below(22)) : 1 + (t % 22);
    ids.push_back(t);
  }
  return ids;
}

TrainData tiny_data() { return TrainData{stream(400, 1), stream(120, 2), ""}; }

bool same_floats(const float* a, const float* b, size_t n) { return std::memcmp(a, b, n * sizeof(float)) == 0; }

std::vector<float> moments(const FileSet& ck, const char* name) {
  const StFile f = parse_safetensors(ck.at("optimizer.safetensors"));
  const StTensor* t = f.find(name);
  EXPECT_NE(t, nullptr);
  std::vector<float> out(size_t(t->numel()));
  tensor_to_float(f, *t, out.data());
  return out;
}

// ---- schedule ---------------------------------------------------------------

TEST(Schedule, WarmupThenCosineToMinLr) {
  TrainConfig c;
  c.lr = 1e-3;
  c.min_lr = 1e-4;
  c.warmup = 10;
  c.steps = 110;
  // Formula, written out: warmup lr (s+1)/warmup; then
  // min + (lr - min)(1 + cos(pi (s - warmup) / (steps - warmup))) / 2.
  EXPECT_DOUBLE_EQ(lr_at(c, 0), 1e-4);
  EXPECT_DOUBLE_EQ(lr_at(c, 4), 5e-4);
  EXPECT_DOUBLE_EQ(lr_at(c, 9), 1e-3);
  EXPECT_NEAR(lr_at(c, 10), 1e-3, 1e-15);
  EXPECT_NEAR(lr_at(c, 60), 1e-4 + 0.5 * 9e-4, 1e-15);  // halfway: cos(pi/2) = 0
  EXPECT_NEAR(lr_at(c, 35), 1e-4 + 0.5 * 9e-4 * (1 + std::cos(std::numbers::pi * 0.25)), 1e-15);
  EXPECT_NEAR(lr_at(c, 110), 1e-4, 1e-15);  // the end
  EXPECT_NEAR(lr_at(c, 500), 1e-4, 1e-15);  // beyond it (a resume with more steps) stays at min
  c.min_lr = -1;                            // default: lr / 10
  EXPECT_NEAR(lr_at(c, 110), 1e-4, 1e-15);
  c.schedule = "constant";
  EXPECT_DOUBLE_EQ(lr_at(c, 3), 4e-4);
  EXPECT_DOUBLE_EQ(lr_at(c, 80), 1e-3);
  c.warmup = 0;
  EXPECT_DOUBLE_EQ(lr_at(c, 0), 1e-3);
}

// ---- AdamW --------------------------------------------------------------------

TEST(AdamW, ThreeStepsMatchHandComputedUpdate) {
  const std::vector<double> p0{0.5, -1.25, 2.0}, g1{0.1, -0.3, 0.0}, g2{-0.2, 0.05, 1.5}, g3{0.4, 0.4, -0.7};
  const double lr = 0.01, b1 = 0.8, b2 = 0.95, eps = 1e-6, wd = 0.1;
  for (bool decay : {false, true}) {
    std::vector<float> p(p0.begin(), p0.end()), m(3, 0.f), v(3, 0.f);
    std::vector<double> P = p0, M(3, 0), Vv(3, 0);
    int t = 0;
    for (const auto* g : {&g1, &g2, &g3}) {
      ++t;
      const std::vector<float> gf(g->begin(), g->end());
      adamw_step(p, gf, m, v, t, lr, AdamParams{b1, b2, eps, wd}, decay);
      for (int i = 0; i < 3; ++i) {
        M[i] = b1 * M[i] + (1 - b1) * (*g)[i];
        Vv[i] = b2 * Vv[i] + (1 - b2) * (*g)[i] * (*g)[i];
        const double mhat = M[i] / (1 - std::pow(b1, t)), vhat = Vv[i] / (1 - std::pow(b2, t));
        if (decay) P[i] -= lr * wd * P[i];
        P[i] -= lr * mhat / (std::sqrt(vhat) + eps);
      }
      for (int i = 0; i < 3; ++i) {
        EXPECT_NEAR(p[size_t(i)], P[i], 2e-6) << "step " << t << " element " << i << " decay " << decay;
        EXPECT_NEAR(m[size_t(i)], M[i], 1e-7);
        EXPECT_NEAR(v[size_t(i)], Vv[i], 1e-7);
      }
    }
  }
  // The first update moves every parameter with a nonzero gradient by about lr (Adam's sign-like step).
  std::vector<float> p{1.f}, m{0.f}, v{0.f};
  adamw_step(p, std::vector<float>{123.f}, m, v, 1, 0.01, AdamParams{}, false);
  EXPECT_NEAR(p[0], 0.99f, 1e-6);
}

TEST(AdamW, DecayOnlyOnInnerMatricesAndUnembedding) {
  for (const char* n : {"blocks.0.attn.W_Q", "blocks.1.attn.W_K", "blocks.0.attn.W_V", "blocks.3.attn.W_O",
                        "unembed.W_U"})
    EXPECT_TRUE(decays(n)) << n;
  for (const char* n : {"embed.W_E", "pos_embed.W_pos", "blocks.0.attn.b_Q", "blocks.0.attn.b_O", "blocks.0.ln1.w",
                        "blocks.0.ln1.b", "ln_final.w", "ln_final.b", "unembed.b_U"})
    EXPECT_FALSE(decays(n)) << n;
}

TEST(Init, TransformerLensLikeScales) {
  TrainConfig c = tiny_config();
  c.model.n_ctx = 64;
  c.model.d_model = 64;
  c.model.d_head = 32;
  Model m(c.model);
  Rng rng(3);
  init_weights(m, 0.02, 1.0, rng);
  const auto stats = [&](const std::string& name) {
    const TensorSpec* s = m.find(name);
    double sum = 0, sq = 0;
    for (size_t i = 0; i < s->numel; ++i) {
      sum += m.data()[s->offset + i];
      sq += double(m.data()[s->offset + i]) * m.data()[s->offset + i];
    }
    const double mean = sum / double(s->numel);
    return std::pair{mean, std::sqrt(sq / double(s->numel) - mean * mean)};
  };
  EXPECT_NEAR(stats("pos_embed.W_pos").second, 1.0, 0.05);
  EXPECT_NEAR(stats("embed.W_E").second, 0.02, 0.003);
  EXPECT_NEAR(stats("blocks.1.attn.W_Q").second, 0.02, 0.002);
  EXPECT_NEAR(stats("unembed.W_U").second, 0.02, 0.003);
  EXPECT_EQ(stats("blocks.0.ln1.w"), std::pair(1.0, 0.0));
  EXPECT_EQ(stats("ln_final.b"), std::pair(0.0, 0.0));
  EXPECT_EQ(stats("blocks.0.attn.b_K"), std::pair(0.0, 0.0));
  EXPECT_EQ(stats("unembed.b_U"), std::pair(0.0, 0.0));
  // Default positional std: 1 with Shortformer positions, init_std otherwise.
  EXPECT_EQ(c.pos_init_value(), 1.0);
  c.model.positional = PosEmbed::Standard;
  EXPECT_EQ(c.pos_init_value(), 0.02);
}

// ---- data ---------------------------------------------------------------------

TEST(Data, DecodeTokenIds) {
  const std::vector<uint8_t> u16{1, 0, 0x34, 0x12, 0xff, 0xff};
  EXPECT_EQ(decode_token_ids(u16, TokenDtype::U16, "x"), (std::vector<int>{1, 0x1234, 0xffff}));
  const std::vector<uint8_t> i32{7, 0, 0, 0, 0, 1, 0, 0};
  EXPECT_EQ(decode_token_ids(i32, TokenDtype::I32, "x"), (std::vector<int>{7, 256}));
  EXPECT_EQ(decode_token_ids(i32, TokenDtype::U32, "x"), (std::vector<int>{7, 256}));
  EXPECT_THROW(decode_token_ids(std::vector<uint8_t>{1, 2, 3}, TokenDtype::U16, "x"), Error);
  EXPECT_THROW(decode_token_ids(std::vector<uint8_t>{}, TokenDtype::U16, "x"), Error);
  EXPECT_THROW(decode_token_ids(std::vector<uint8_t>{0, 0, 0, 0x80}, TokenDtype::I32, "x"), Error);  // negative
  EXPECT_EQ(parse_token_dtype("uint16"), TokenDtype::U16);
  EXPECT_THROW(parse_token_dtype("f32"), Error);
  try {
    check_token_ids(std::vector<int>{1, 2, 40, 3}, 23, 2, "data.u16");
    FAIL();
  } catch (const Error& e) {
    const std::string w = e.what();
    EXPECT_NE(w.find("data.u16"), std::string::npos) << w;
    EXPECT_NE(w.find("40"), std::string::npos) << w;
    EXPECT_NE(w.find("position 2"), std::string::npos) << w;
  }
  EXPECT_THROW(check_token_ids(std::vector<int>{1, 2}, 23, 5, "short"), Error);
}

TEST(Data, TextWindowsAreBosPlusConsecutiveIds) {
  std::vector<int> ids(50);
  for (int i = 0; i < 50; ++i) ids[size_t(i)] = 100 + i;  // id = 100 + offset
  Rng rng(4);
  std::vector<int> out;
  std::set<int> starts;
  for (int rep = 0; rep < 20; ++rep) {
    sample_text_batch(ids, 3, 10, 7, rng, out);
    ASSERT_EQ(out.size(), 30u);
    for (int b = 0; b < 3; ++b) {
      EXPECT_EQ(out[size_t(b * 10)], 7);
      const int first = out[size_t(b * 10 + 1)];
      starts.insert(first);
      EXPECT_LE(first - 100 + 9, 50);  // the window fits
      for (int t = 2; t < 10; ++t) EXPECT_EQ(out[size_t(b * 10 + t)], first + t - 1);
    }
  }
  EXPECT_GT(starts.size(), 20u);  // random offsets
  // Without BOS: T consecutive ids; a stream exactly one window long works.
  sample_text_batch(std::span<const int>(ids).first(10), 2, 10, -1, rng, out);
  for (int t = 0; t < 10; ++t) EXPECT_EQ(out[size_t(t)], 100 + t);
  EXPECT_THROW(sample_text_batch(std::span<const int>(ids).first(8), 1, 10, 7, rng, out), Error);
  // Fixed windows: evenly spaced, first at offset 0 and last at the end.
  const auto w = fixed_windows(ids, 3, 10, 7);
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(w[0][1], 100);
  EXPECT_EQ(w[2][9], 149);
  EXPECT_EQ(w[1][0], 7);
}

TEST(Data, RepeatedRandomRowsArePeriodic) {
  RepeatedRandomSpec spec{50, 0, 0, 0, {}};
  spec.resolve(33);
  EXPECT_EQ(spec.min_len, 8);
  EXPECT_EQ(spec.max_len, 16);
  RepeatedRandomSpec wide{50, 0, 0, 0, {}};
  wide.resolve(129);
  EXPECT_EQ(wide.min_len, 8);
  EXPECT_EQ(wide.max_len, 40);
  spec = RepeatedRandomSpec{50, 0, 4, 0, {}};
  spec.resolve(33);
  Rng rng(8);
  std::vector<int> out;
  std::set<int> periods;
  for (int rep = 0; rep < 10; ++rep) {
    sample_repeated_batch(spec, 4, 33, rng, out);
    ASSERT_EQ(out.size(), 4u * 33);
    for (int b = 0; b < 4; ++b) {
      const int* row = out.data() + b * 33;
      EXPECT_EQ(row[0], 0);
      // Smallest period p of row[1..]: must be within [min_len, max_len].
      int p = 1;
      for (; p < 32; ++p) {
        bool ok = true;
        for (int t = 1 + p; t < 33; ++t) ok &= row[t] == row[t - p];
        if (ok) break;
      }
      EXPECT_GE(p, 4);
      EXPECT_LE(p, 16);
      periods.insert(p);
      for (int t = 1; t < 33; ++t) EXPECT_NE(row[t], 0);
    }
  }
  EXPECT_GT(periods.size(), 3u);
  RepeatedRandomSpec bad{50, 0, 10, 20, {}};
  EXPECT_THROW(bad.resolve(33), Error);  // 20 + 20 + BOS > 33
}

// ---- config -------------------------------------------------------------------

TEST(TrainConfigJson, RoundTripAndStrictKeys) {
  TrainConfig c = tiny_config();
  c.min_lr = 2.5e-5;
  c.seed = 0xFFFFFFFFFFFFFFF1ull;
  c.data_path = "/x/train.u16";
  c.model.attn_scale = 2.5f;
  c.model.eps = 1e-6f;
  const TrainConfig d = train_config_from_json(train_config_to_json(c));
  EXPECT_EQ(train_config_to_json(d), train_config_to_json(c));
  EXPECT_EQ(d.seed, c.seed);
  EXPECT_EQ(d.model.eps, c.model.eps);
  EXPECT_EQ(d.curriculum.size(), 2u);
  EXPECT_EQ(d.curriculum[0].max_len, 5);
  EXPECT_EQ(d.model.positional, PosEmbed::Shortformer);
  EXPECT_EQ(d.lr, c.lr);
  try {
    train_config_from_json(R"({"batch": 4, "learning_rate": 1})");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("learning_rate"), std::string::npos) << e.what();
  }
  EXPECT_THROW(train_config_from_json(R"({"batch": "four"})"), Error);
  EXPECT_THROW(train_config_from_json(R"({"model": {"positional": "rotary"}})"), Error);
  EXPECT_THROW(train_config_from_json("{"), Error);
}

TEST(TrainConfigJson, ValidateNamesTheField) {
  const auto msg = [](TrainConfig c) {
    try {
      c.validate();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  TrainConfig c = tiny_config();
  EXPECT_EQ(msg(c), "(no error)");
  c.lr = -1;
  EXPECT_NE(msg(c).find("lr"), std::string::npos);
  c = tiny_config();
  c.curriculum = {DataPhase{"repeat", 3}};
  EXPECT_NE(msg(c).find("'repeat'"), std::string::npos);
  c = tiny_config();
  c.curriculum = {DataPhase{"text", 5}, DataPhase{"text", 5}, DataPhase{"repeated-random", 1}};
  EXPECT_NE(msg(c).find("never run"), std::string::npos);
  c = tiny_config();
  c.bos = 23;
  EXPECT_NE(msg(c).find("bos"), std::string::npos);
  c = tiny_config();
  EXPECT_EQ(c.phase_at(0), 0u);
  EXPECT_EQ(c.phase_at(2), 0u);
  EXPECT_EQ(c.phase_at(3), 1u);
  EXPECT_EQ(c.phase_at(1000), 1u);
}

// ---- the trainer ------------------------------------------------------------------

TEST(Trainer, BadDataIsRejectedWithAClearMessage) {
  TrainData d = tiny_data();
  d.train[17] = 23;  // == d_vocab
  try {
    Trainer t(tiny_config(), d);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("training data: token id 23 at position 17"), std::string::npos)
        << e.what();
  }
  d = tiny_data();
  d.train.resize(10);  // shorter than one window of BOS + 11
  EXPECT_THROW(Trainer(tiny_config(), d), Error);
  d = tiny_data();
  d.train.clear();  // a text phase without text
  EXPECT_THROW(Trainer(tiny_config(), d), Error);
}

TEST(Trainer, SameSeedSameRunAndResumeIsBitIdentical) {
  const TrainConfig c = tiny_config();
  // Straight through.
  Trainer a(c, tiny_data());
  std::vector<float> losses;
  while (!a.done()) {
    const StepResult r = a.train_step();
    ASSERT_TRUE(r.finite);
    losses.push_back(r.loss);
  }
  ASSERT_EQ(a.step(), 8);
  const FileSet end_a = a.checkpoint();

  // The same config again gives the same weights.
  Trainer b(c, tiny_data());
  while (!b.done()) b.train_step();
  ASSERT_EQ(a.model().size(), b.model().size());
  EXPECT_TRUE(same_floats(a.model().data(), b.model().data(), a.model().size()));

  // Half (inside the repeated-random phase: step 2 of 3), checkpoint in memory, resume, the rest.
  for (int cut : {2, 5}) {
    Trainer h(c, tiny_data());
    for (int i = 0; i < cut; ++i) h.train_step();
    const FileSet mid = h.checkpoint();
    Trainer r(mid, tiny_data());
    EXPECT_EQ(r.step(), cut);
    int i = cut;
    while (!r.done()) {
      const StepResult s = r.train_step();
      EXPECT_EQ(s.loss, losses[size_t(i++)]) << "step " << i << " after resuming at " << cut;
    }
    EXPECT_TRUE(same_floats(a.model().data(), r.model().data(), a.model().size())) << "resumed at " << cut;
    const FileSet end_r = r.checkpoint();
    EXPECT_EQ(moments(end_r, "adam.m"), moments(end_a, "adam.m"));
    EXPECT_EQ(moments(end_r, "adam.v"), moments(end_a, "adam.v"));
  }
  // A different seed trains differently.
  TrainConfig c2 = c;
  c2.seed = 100;
  Trainer d(c2, tiny_data());
  while (!d.done()) d.train_step();
  EXPECT_FALSE(same_floats(a.model().data(), d.model().data(), a.model().size()));
}

// update_unit (the page's way: one group of sequences per call) is
// train_step's arithmetic; the groups are uneven here (5 sequences in 3).
TEST(Trainer, UpdateInUnitsEqualsTrainStep) {
  TrainConfig c = tiny_config();
  c.batch = 5;
  c.threads = 3;
  Trainer a(c, tiny_data()), b(c, tiny_data());
  while (!a.done()) {
    const StepResult ra = a.train_step();
    int units = 0;
    std::optional<StepResult> rb;
    while (!(rb = b.update_unit())) {
      ++units;
      EXPECT_TRUE(b.update_in_progress());
      EXPECT_THROW(b.evaluate(), Error);  // not in the middle of an update
      EXPECT_THROW(b.train_step(), Error);
    }
    EXPECT_EQ(units, 2);  // the third call finishes
    EXPECT_FALSE(b.update_in_progress());
    EXPECT_EQ(rb->loss, ra.loss);
    EXPECT_EQ(rb->grad_norm, ra.grad_norm);
    EXPECT_EQ(rb->step, ra.step);
  }
  EXPECT_TRUE(same_floats(a.model().data(), b.model().data(), a.model().size()));
  EXPECT_EQ(moments(a.checkpoint(), "adam.v"), moments(b.checkpoint(), "adam.v"));
}

TEST(Trainer, CheckpointHoldsTheHuggingFaceLayoutAndState) {
  TrainData data = tiny_data();
  data.tokenizer_json = R"({"model": {"type": "WordLevel", "vocab": {"a": 0}}})";
  Trainer t(tiny_config(), data);
  t.train_step();
  const FileSet ck = t.checkpoint(1.5);
  for (const char* f : {"model.safetensors", "config.json", "tokenizer.json", "optimizer.safetensors",
                        "trainer_state.json"})
    EXPECT_EQ(ck.count(f), 1u) << f;
  // The weights load as a model (F32, TransformerLens names), equal to the trainer's.
  const std::string tok(ck.at("tokenizer.json").begin(), ck.at("tokenizer.json").end());
  EXPECT_EQ(tok, data.tokenizer_json);
  FileSet weights_only = ck;
  weights_only.erase("tokenizer.json");
  const LoadedModel lm = load_model(weights_only, LoadOptions{.process = false});
  ASSERT_EQ(lm.model.size(), t.model().size());
  EXPECT_TRUE(same_floats(lm.model.data(), t.model().data(), t.model().size()));
  const auto st = nlohmann::json::parse(ck.at("trainer_state.json"));
  EXPECT_EQ(st["step"], 1);
  EXPECT_EQ(st["tokens"], 4 * 12);
  EXPECT_EQ(st["config"]["batch"], 4);
  EXPECT_EQ(moments(ck, "adam.m").size(), t.model().size());
  // A resume may change the number of steps but not the model.
  Trainer more(ck, data, [](TrainConfig& c) { c.steps = 20; });
  EXPECT_EQ(more.config().steps, 20);
  EXPECT_THROW(Trainer(ck, data, [](TrainConfig& c) { c.model.d_model = 32; }), Error);
  FileSet broken = ck;
  broken.erase("optimizer.safetensors");
  EXPECT_THROW(Trainer(broken, data), Error);
}

TEST(Trainer, EvaluationAndLogLine) {
  Trainer t(tiny_config(), tiny_data());
  const Evaluation e = t.evaluate();
  ASSERT_TRUE(e.heldout_loss.has_value());
  // Untrained: about log(23) per token.
  EXPECT_NEAR(*e.heldout_loss, std::log(23.0), 0.5);
  EXPECT_EQ(e.prev_token.rows(), 2);
  EXPECT_EQ(e.prev_token.cols(), 2);
  EXPECT_EQ(e.prev_token_on, "held-out text");
  // n_ctx 12 with BOS: 11 tokens of room, so [I]'s 25 x 4 shrinks to 2 x 4.
  EXPECT_EQ(e.pm_tokens, 2);
  EXPECT_EQ(e.prefix_matching.rows(), 2);
  const std::string line = log_line(t, nullptr, 0, 0, 0, &e);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  const auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["step"], 0);
  EXPECT_EQ(j["prefix_matching"].size(), 2u);
  EXPECT_EQ(j["prefix_matching"][1].size(), 2u);
  EXPECT_NEAR(j["prev_token"][0][1].get<double>(), e.prev_token(0, 1), 1e-3);
  EXPECT_TRUE(j.contains("heldout_loss"));
  EXPECT_TRUE(j.contains("repeat_loss_first"));
  EXPECT_TRUE(j.contains("icl_score"));
}

TEST(RunTraining, LogsEvaluatesSavesAndFinishes) {
  Trainer t(tiny_config(), tiny_data());
  std::ostringstream log;
  std::map<int64_t, FileSet> saved;
  RunOptions o;
  o.log = &log;
  o.save = [&](const FileSet& f, int64_t step) {
    saved[step] = f;
    return "mem:" + std::to_string(step);
  };
  int progress_calls = 0;
  o.progress = [&](const Progress& p) {
    ++progress_calls;
    EXPECT_EQ(p.total, 8);
    EXPECT_GE(p.eta_s, 0);
  };
  const RunResult r = run_training(t, o);
  EXPECT_EQ(r.status, RunStatus::Finished);
  EXPECT_EQ(r.step, 8);
  EXPECT_EQ(r.last_saved, "mem:8");
  EXPECT_EQ(progress_calls, 8);
  ASSERT_EQ(saved.size(), 2u);  // steps 4 and 8
  EXPECT_EQ(saved.count(4), 1u);
  // One line per step (log_every 1) plus the evaluation at step 0.
  std::istringstream in(log.str());
  std::string line;
  std::vector<nlohmann::json> lines;
  while (std::getline(in, line)) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), 9u);
  for (size_t i = 0; i < lines.size(); ++i) EXPECT_EQ(lines[i]["step"], int(i));
  EXPECT_TRUE(lines[0].contains("prefix_matching"));
  EXPECT_FALSE(lines[3].contains("prefix_matching"));
  EXPECT_TRUE(lines[4].contains("prefix_matching"));
  EXPECT_TRUE(lines[8].contains("heldout_loss"));
  EXPECT_EQ(lines[2]["phase"], "repeated-random");
  EXPECT_EQ(lines[4]["phase"], "text");
  EXPECT_EQ(lines[8]["tokens"], 8 * 4 * 12);
}

TEST(RunTraining, NaNStopsAndKeepsTheLastGoodCheckpoint) {
  TrainConfig c = tiny_config();
  c.steps = 50;
  c.save_every = 1;
  c.warmup = 0;
  c.grad_clip = 0;
  c.schedule = "constant";
  Trainer t(c, tiny_data());
  // After the first steps at a sane lr, an absurd one: Adam moves every
  // weight by about lr, so the next forward overflows.
  std::map<int64_t, FileSet> saved;
  RunOptions o;
  o.save = [&](const FileSet& f, int64_t step) {
    saved[step] = f;
    return "mem:" + std::to_string(step);
  };
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(t.train_step().finite);
  Trainer blowup(t.checkpoint(), tiny_data(), [](TrainConfig& k) { k.lr = 1e36; });
  const RunResult r = run_training(blowup, o);
  ASSERT_EQ(r.status, RunStatus::Diverged) << r.message;
  EXPECT_NE(r.message.find("diverged"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("at step"), std::string::npos) << r.message;
  EXPECT_TRUE(r.message.find("NaN") != std::string::npos || r.message.find("Inf") != std::string::npos)
      << r.message;
  ASSERT_FALSE(saved.empty()) << r.message;
  EXPECT_EQ(r.last_saved, "mem:" + std::to_string(saved.rbegin()->first));
  EXPECT_NE(r.message.find(r.last_saved), std::string::npos) << r.message;
  // Every saved checkpoint is finite and loads; none is from the failing step on.
  for (const auto& [step, files] : saved) {
    EXPECT_LT(step, r.step + 1);
    const LoadedModel lm = load_model(files, LoadOptions{.process = false});
    for (size_t i = 0; i < lm.model.size(); ++i) ASSERT_TRUE(std::isfinite(lm.model.data()[i])) << "step " << step;
  }
  EXPECT_LT(r.step, 50);
}

TEST(RunTraining, StopFlagSavesAndReturnsInterrupted) {
  Trainer t(tiny_config(), tiny_data());
  std::atomic<bool> stop{false};
  std::map<int64_t, FileSet> saved;
  RunOptions o;
  o.stop = &stop;
  o.save = [&](const FileSet& f, int64_t step) {
    saved[step] = f;
    return "mem:" + std::to_string(step);
  };
  o.progress = [&](const Progress& p) {
    if (p.step == 3) stop = true;
  };
  const RunResult r = run_training(t, o);
  EXPECT_EQ(r.status, RunStatus::Interrupted);
  EXPECT_EQ(r.step, 3);
  EXPECT_EQ(r.last_saved, "mem:3");
  ASSERT_EQ(saved.count(3), 1u);
  // The interrupted run resumes to the same end as a straight one.
  Trainer resumed(saved[3], tiny_data());
  while (!resumed.done()) resumed.train_step();
  Trainer straight(tiny_config(), tiny_data());
  while (!straight.done()) straight.train_step();
  EXPECT_TRUE(same_floats(resumed.model().data(), straight.model().data(), straight.model().size()));
}

}  // namespace
}  // namespace cs::train
