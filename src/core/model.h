// The attention-only transformer's parameters: one flat float block (like
// llm.c) holding every tensor under its TransformerLens name, row-major, so a
// safetensors F32 tensor is a memcpy away. Accessors return Eigen maps in the
// TransformerLens convention: row vectors, x @ W.
#pragma once
#include <Eigen/Core>
#include <compare>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/config.h"

namespace cs {

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Vec = Eigen::VectorXf;
using MatMap = Eigen::Map<RowMat>;
using ConstMatMap = Eigen::Map<const RowMat>;
using VecMap = Eigen::Map<Eigen::VectorXf>;
using ConstVecMap = Eigen::Map<const Eigen::VectorXf>;

// One attention head: layer and head index (written "layer.head", e.g. 1.3).
struct HeadId {
  int layer = 0, head = 0;
  auto operator<=>(const HeadId&) const = default;  // by layer, then head
};

struct TensorSpec {
  std::string name;            // TransformerLens key, e.g. "blocks.0.attn.W_Q"
  std::vector<int64_t> shape;  // e.g. {n_heads, d_model, d_head}
  size_t offset = 0;           // into Model::data(), in floats
  size_t numel = 0;
};

// Which TransformerLens weight-processing steps have been applied.
struct ProcessingState {
  bool fold_ln = false;
  bool center_writing_weights = false;
  bool center_unembed = false;
  bool fold_value_biases = false;
  bool any() const { return fold_ln || center_writing_weights || center_unembed || fold_value_biases; }
  // "raw (as stored)" or e.g. "processed: fold_ln, center_writing_weights, center_unembed, fold_value_biases"
  std::string describe() const;
};

class Model {
 public:
  Model() = default;
  // Allocates every tensor of the config, zero-filled. Throws cs::Error on a bad config.
  explicit Model(const ModelConfig& cfg);
  // The same without the zero fill, for a loader that writes every float
  // before anything reads one: filling 200 MB takes over 100 ms in a browser,
  // too long for one frame; unfilled, the memory is touched a slice at a time.
  struct Uninitialized {};
  Model(const ModelConfig& cfg, Uninitialized);

  const ModelConfig& config() const { return cfg_; }
  // Changing the normalization (fold_ln: LN -> LNPre) drops ln weights' meaning but keeps layout.
  void set_normalization(Norm n) { cfg_.normalization = n; }

  // Every tensor in a fixed canonical order (embed, pos_embed, blocks..., ln_final, unembed).
  const std::vector<TensorSpec>& tensors() const { return specs_; }
  const TensorSpec* find(const std::string& name) const;  // nullptr if absent
  float* data() { return data_.data(); }
  const float* data() const { return data_.data(); }
  size_t size() const { return data_.size(); }
  int64_t parameter_count() const { return int64_t(data_.size()); }

  // ---- views (shapes in TransformerLens convention, x @ W) ----
  MatMap W_E();                  // [d_vocab, d_model]
  MatMap W_pos();                // [n_ctx, d_model]   (0 x d_model when positional == None)
  MatMap W_Q(int l, int h);      // [d_model, d_head]
  MatMap W_K(int l, int h);      // [d_model, d_head]
  MatMap W_V(int l, int h);      // [d_model, d_head]
  MatMap W_O(int l, int h);      // [d_head, d_model]
  VecMap b_Q(int l, int h);      // [d_head]
  VecMap b_K(int l, int h);      // [d_head]
  VecMap b_V(int l, int h);      // [d_head]
  VecMap b_O(int l);             // [d_model]
  VecMap ln1_w(int l);           // [d_model]  (only with Norm::LN)
  VecMap ln1_b(int l);           // [d_model]  (only with Norm::LN)
  VecMap ln_final_w();           // [d_model]  (only with Norm::LN)
  VecMap ln_final_b();           // [d_model]  (only with Norm::LN)
  MatMap W_U();                  // [d_model, d_vocab_out]
  VecMap b_U();                  // [d_vocab_out]

  ConstMatMap W_E() const;
  ConstMatMap W_pos() const;
  ConstMatMap W_Q(int l, int h) const;
  ConstMatMap W_K(int l, int h) const;
  ConstMatMap W_V(int l, int h) const;
  ConstMatMap W_O(int l, int h) const;
  ConstVecMap b_Q(int l, int h) const;
  ConstVecMap b_K(int l, int h) const;
  ConstVecMap b_V(int l, int h) const;
  ConstVecMap b_O(int l) const;
  ConstVecMap ln1_w(int l) const;
  ConstVecMap ln1_b(int l) const;
  ConstVecMap ln_final_w() const;
  ConstVecMap ln_final_b() const;
  ConstMatMap W_U() const;
  ConstVecMap b_U() const;

  ProcessingState processing;

 private:
  float* at(const std::string& name);
  const float* at(const std::string& name) const;
  // std::allocator, except that resize() leaves new floats uninitialized.
  template <class T>
  struct NoFillAllocator : std::allocator<T> {
    template <class U>
    struct rebind {
      using other = NoFillAllocator<U>;
    };
    NoFillAllocator() = default;
    template <class U>
    NoFillAllocator(const NoFillAllocator<U>&) noexcept {}
    template <class U>
    void construct(U* p) noexcept {
      ::new (static_cast<void*>(p)) U;
    }
    template <class U, class... A>
    void construct(U* p, A&&... a) {
      ::new (static_cast<void*>(p)) U(std::forward<A>(a)...);
    }
  };
  Model(const ModelConfig& cfg, bool zero_fill);

  ModelConfig cfg_;
  std::vector<TensorSpec> specs_;
  std::vector<float, NoFillAllocator<float>> data_;
};

// Fills every weight with N(0, std) from a fixed seed (LN weights near 1,
// biases small), for tests and benchmarks. Deterministic across platforms
// (own PRNG, no std:: distributions).
void randomize(Model& m, uint64_t seed, float std = 0.1f);

}  // namespace cs
