// Model: one flat float block holding every TransformerLens tensor (model.h).
//
// Canonical tensor order (also the order of Model::tensors()):
//   embed.W_E, pos_embed.W_pos (if positional),
//   for each layer l: blocks.l.ln1.w, blocks.l.ln1.b (if Norm::LN),
//                     blocks.l.attn.W_Q, W_K, W_V, W_O, b_Q, b_K, b_V, b_O,
//   ln_final.w, ln_final.b (if Norm::LN), unembed.W_U, unembed.b_U.
// Every tensor is row-major; a head's W_Q[h] is the contiguous [d_model, d_head]
// block starting at h * d_model * d_head (TransformerLens convention, x @ W).
#include "core/model.h"

#include <cstring>
#include <new>
#include <string>
#include <utility>

#include "core/error.h"
#include "core/rng.h"

namespace cs {

namespace {

// Index of each tensor in the canonical spec list, derived from the config.
struct Layout {
  size_t pos = 0;         // pos_embed.W_pos (valid if has_pos)
  size_t block0 = 0;      // first tensor of block 0
  size_t per_block = 0;   // tensors per block
  size_t attn0 = 0;       // W_Q's index within a block
  size_t final0 = 0;      // first tensor after the blocks
  size_t unembed = 0;     // unembed.W_U
};

// From the spec list itself (not the config), so the views stay right when
// set_normalization() changes the config but keeps the layout.
Layout layout_of(const ModelConfig& c, const std::vector<TensorSpec>& specs) {
  const bool pos = specs.size() > 1 && specs[1].name == "pos_embed.W_pos";
  const bool ln = specs.size() >= 3 && specs[specs.size() - 3].name == "ln_final.b";
  Layout L;
  L.pos = 1;
  L.block0 = 1 + (pos ? 1 : 0);
  L.attn0 = ln ? 2 : 0;
  L.per_block = L.attn0 + 8;
  L.final0 = L.block0 + size_t(c.n_layers) * L.per_block;
  L.unembed = L.final0 + (ln ? 2 : 0);
  return L;
}

// specs[i], or a cs::Error for a default-constructed (empty) model.
const TensorSpec& spec_at(const std::vector<TensorSpec>& specs, size_t i) {
  if (i >= specs.size()) throw Error("model: the model has no tensors (default-constructed)");
  return specs[i];
}

enum AttnSlot { kWQ = 0, kWK, kWV, kWO, kbQ, kbK, kbV, kbO };

}  // namespace

std::string ProcessingState::describe() const {
  if (!any()) return "raw (as stored)";
  std::string s = "processed:";
  const char* sep = " ";
  auto add = [&](bool on, const char* name) {
    if (!on) return;
    s += sep;
    s += name;
    sep = ", ";
  };
  add(fold_ln, "fold_ln");
  add(center_writing_weights, "center_writing_weights");
  add(center_unembed, "center_unembed");
  add(fold_value_biases, "fold_value_biases");
  return s;
}

Model::Model(const ModelConfig& cfg) : Model(cfg, true) {}
Model::Model(const ModelConfig& cfg, Uninitialized) : Model(cfg, false) {}

Model::Model(const ModelConfig& cfg, bool zero_fill) : cfg_(cfg) {
  cfg_.validate();
  const int64_t D = cfg_.d_model, H = cfg_.n_heads, Dh = cfg_.d_head;
  size_t offset = 0;
  auto add = [&](std::string name, std::vector<int64_t> shape) {
    size_t n = 1;
    for (int64_t s : shape) n *= size_t(s);
    specs_.push_back(TensorSpec{std::move(name), std::move(shape), offset, n});
    offset += n;
  };
  add("embed.W_E", {cfg_.d_vocab, D});
  if (cfg_.has_pos()) add("pos_embed.W_pos", {cfg_.n_ctx, D});
  for (int l = 0; l < cfg_.n_layers; ++l) {
    const std::string b = "blocks." + std::to_string(l) + ".";
    if (cfg_.has_ln_weights()) {
      add(b + "ln1.w", {D});
      add(b + "ln1.b", {D});
    }
    add(b + "attn.W_Q", {H, D, Dh});
    add(b + "attn.W_K", {H, D, Dh});
    add(b + "attn.W_V", {H, D, Dh});
    add(b + "attn.W_O", {H, Dh, D});
    add(b + "attn.b_Q", {H, Dh});
    add(b + "attn.b_K", {H, Dh});
    add(b + "attn.b_V", {H, Dh});
    add(b + "attn.b_O", {D});
  }
  if (cfg_.has_ln_weights()) {
    add("ln_final.w", {D});
    add("ln_final.b", {D});
  }
  add("unembed.W_U", {D, cfg_.vocab_out()});
  add("unembed.b_U", {cfg_.vocab_out()});
  // 2^30 floats (4 GB): refused clearly rather than by the allocator. In wasm the
  // loader refuses earlier, at one block's 2 GiB (io/model_io.h kDefaultMaxModelBytes).
  if (offset > (size_t(1) << 30))
    throw Error("model: " + std::to_string(offset) + " parameters is more than this build can hold (limit 2^30)");
  // Running out of memory throws std::bad_alloc, which the page's jobs report
  // as "<job>: ran out of memory" (app/jobs.cpp).
  if (zero_fill)
    data_.assign(offset, 0.f);
  else
    data_.resize(offset);
}

const TensorSpec* Model::find(const std::string& name) const {
  for (const auto& s : specs_)
    if (s.name == name) return &s;
  return nullptr;
}

float* Model::at(const std::string& name) {
  return const_cast<float*>(static_cast<const Model*>(this)->at(name));
}

const float* Model::at(const std::string& name) const {
  const TensorSpec* s = find(name);
  if (!s) throw Error("model: tensor '" + name + "' is absent in this model");
  return data_.data() + s->offset;
}

// ---- views -------------------------------------------------------------------
// The const versions do the work; the mutable ones cast the constness away
// (the underlying storage, data_, is ours and mutable).

namespace {

void check_layer_head(const ModelConfig& c, int l, int h, const char* what) {
  if (l < 0 || l >= c.n_layers || h < 0 || h >= c.n_heads)
    throw Error(std::string("model: ") + what + " index (layer " + std::to_string(l) + ", head " +
                std::to_string(h) + ") out of range (" + std::to_string(c.n_layers) + " layers, " +
                std::to_string(c.n_heads) + " heads)");
}

void check_layer(const ModelConfig& c, int l, const char* what) {
  if (l < 0 || l >= c.n_layers)
    throw Error(std::string("model: ") + what + " layer " + std::to_string(l) + " out of range (" +
                std::to_string(c.n_layers) + " layers)");
}

void require_ln(const ModelConfig& c, const char* what) {
  if (!c.has_ln_weights())
    throw Error(std::string("model: ") + what + " is absent (normalization is " + to_string(c.normalization) +
                ", not LN)");
}

}  // namespace

ConstMatMap Model::W_E() const {
  return ConstMatMap(data_.data() + spec_at(specs_, 0).offset, cfg_.d_vocab, cfg_.d_model);
}

ConstMatMap Model::W_pos() const {
  if (!cfg_.has_pos()) return ConstMatMap(data_.data(), 0, cfg_.d_model);  // empty view
  return ConstMatMap(data_.data() + spec_at(specs_, layout_of(cfg_, specs_).pos).offset, cfg_.n_ctx, cfg_.d_model);
}

namespace {
// Start of attention tensor `slot` of layer l.
const float* attn_ptr(const float* data, const std::vector<TensorSpec>& specs, const ModelConfig& c,
                      int l, int slot) {
  const Layout L = layout_of(c, specs);
  return data + spec_at(specs, L.block0 + size_t(l) * L.per_block + L.attn0 + size_t(slot)).offset;
}
}  // namespace
#define CS_ATTN_PTR(slot) attn_ptr(data_.data(), specs_, cfg_, l, slot)

ConstMatMap Model::W_Q(int l, int h) const {
  check_layer_head(cfg_, l, h, "W_Q");
  return ConstMatMap(CS_ATTN_PTR(kWQ) + size_t(h) * cfg_.d_model * cfg_.d_head, cfg_.d_model, cfg_.d_head);
}
ConstMatMap Model::W_K(int l, int h) const {
  check_layer_head(cfg_, l, h, "W_K");
  return ConstMatMap(CS_ATTN_PTR(kWK) + size_t(h) * cfg_.d_model * cfg_.d_head, cfg_.d_model, cfg_.d_head);
}
ConstMatMap Model::W_V(int l, int h) const {
  check_layer_head(cfg_, l, h, "W_V");
  return ConstMatMap(CS_ATTN_PTR(kWV) + size_t(h) * cfg_.d_model * cfg_.d_head, cfg_.d_model, cfg_.d_head);
}
ConstMatMap Model::W_O(int l, int h) const {
  check_layer_head(cfg_, l, h, "W_O");
  return ConstMatMap(CS_ATTN_PTR(kWO) + size_t(h) * cfg_.d_head * cfg_.d_model, cfg_.d_head, cfg_.d_model);
}
ConstVecMap Model::b_Q(int l, int h) const {
  check_layer_head(cfg_, l, h, "b_Q");
  return ConstVecMap(CS_ATTN_PTR(kbQ) + size_t(h) * cfg_.d_head, cfg_.d_head);
}
ConstVecMap Model::b_K(int l, int h) const {
  check_layer_head(cfg_, l, h, "b_K");
  return ConstVecMap(CS_ATTN_PTR(kbK) + size_t(h) * cfg_.d_head, cfg_.d_head);
}
ConstVecMap Model::b_V(int l, int h) const {
  check_layer_head(cfg_, l, h, "b_V");
  return ConstVecMap(CS_ATTN_PTR(kbV) + size_t(h) * cfg_.d_head, cfg_.d_head);
}
ConstVecMap Model::b_O(int l) const {
  check_layer(cfg_, l, "b_O");
  return ConstVecMap(CS_ATTN_PTR(kbO), cfg_.d_model);
}
#undef CS_ATTN_PTR

ConstVecMap Model::ln1_w(int l) const {
  require_ln(cfg_, "ln1.w");
  check_layer(cfg_, l, "ln1.w");
  const Layout L = layout_of(cfg_, specs_);
  return ConstVecMap(data_.data() + spec_at(specs_, L.block0 + size_t(l) * L.per_block).offset, cfg_.d_model);
}
ConstVecMap Model::ln1_b(int l) const {
  require_ln(cfg_, "ln1.b");
  check_layer(cfg_, l, "ln1.b");
  const Layout L = layout_of(cfg_, specs_);
  return ConstVecMap(data_.data() + spec_at(specs_, L.block0 + size_t(l) * L.per_block + 1).offset, cfg_.d_model);
}
ConstVecMap Model::ln_final_w() const {
  require_ln(cfg_, "ln_final.w");
  return ConstVecMap(data_.data() + spec_at(specs_, layout_of(cfg_, specs_).final0).offset, cfg_.d_model);
}
ConstVecMap Model::ln_final_b() const {
  require_ln(cfg_, "ln_final.b");
  return ConstVecMap(data_.data() + spec_at(specs_, layout_of(cfg_, specs_).final0 + 1).offset, cfg_.d_model);
}
ConstMatMap Model::W_U() const {
  return ConstMatMap(data_.data() + spec_at(specs_, layout_of(cfg_, specs_).unembed).offset, cfg_.d_model, cfg_.vocab_out());
}
ConstVecMap Model::b_U() const {
  return ConstVecMap(data_.data() + spec_at(specs_, layout_of(cfg_, specs_).unembed + 1).offset, cfg_.vocab_out());
}

namespace {
MatMap unconst(const ConstMatMap& m) { return MatMap(const_cast<float*>(m.data()), m.rows(), m.cols()); }
VecMap unconst(const ConstVecMap& v) { return VecMap(const_cast<float*>(v.data()), v.size()); }
}  // namespace

MatMap Model::W_E() { return unconst(std::as_const(*this).W_E()); }
MatMap Model::W_pos() { return unconst(std::as_const(*this).W_pos()); }
MatMap Model::W_Q(int l, int h) { return unconst(std::as_const(*this).W_Q(l, h)); }
MatMap Model::W_K(int l, int h) { return unconst(std::as_const(*this).W_K(l, h)); }
MatMap Model::W_V(int l, int h) { return unconst(std::as_const(*this).W_V(l, h)); }
MatMap Model::W_O(int l, int h) { return unconst(std::as_const(*this).W_O(l, h)); }
VecMap Model::b_Q(int l, int h) { return unconst(std::as_const(*this).b_Q(l, h)); }
VecMap Model::b_K(int l, int h) { return unconst(std::as_const(*this).b_K(l, h)); }
VecMap Model::b_V(int l, int h) { return unconst(std::as_const(*this).b_V(l, h)); }
VecMap Model::b_O(int l) { return unconst(std::as_const(*this).b_O(l)); }
VecMap Model::ln1_w(int l) { return unconst(std::as_const(*this).ln1_w(l)); }
VecMap Model::ln1_b(int l) { return unconst(std::as_const(*this).ln1_b(l)); }
VecMap Model::ln_final_w() { return unconst(std::as_const(*this).ln_final_w()); }
VecMap Model::ln_final_b() { return unconst(std::as_const(*this).ln_final_b()); }
MatMap Model::W_U() { return unconst(std::as_const(*this).W_U()); }
VecMap Model::b_U() { return unconst(std::as_const(*this).b_U()); }

// ---- deterministic random weights ---------------------------------------------

namespace {

// offset + scale * z rounded once to float. scale is a float (24 bits) and z has
// at most 19 bits, so the product is exact in double: with or without a fused
// multiply-add (native compilers contract a*b+c, wasm has no FMA) the double
// sum, and hence the float, is the same on every platform.
float affine(double offset, float scale, double z) { return float(offset + double(scale) * z); }
}  // namespace

void randomize(Model& m, uint64_t seed, float std) {
  Rng rng(seed ^ 0x6A09E667F3BCC909ull);
  float* d = m.data();
  for (const TensorSpec& s : m.tensors()) {
    const std::string& n = s.name;
    const bool ln_weight = n.ends_with("ln1.w") || n == "ln_final.w";
    const bool bias = n.ends_with(".b") || n.find(".b_") != std::string::npos;
    // LN scale near 1 but clearly not 1 (so fold_ln has work to do); biases small
    // but nonzero (so every processing step moves something); weights, W_pos
    // included (same scale as W_E), N(0, std).
    const double offset = ln_weight ? 1.0 : 0.0;
    const float scale = ln_weight ? 0.2f : bias ? 0.5f * std : std;
    for (size_t i = 0; i < s.numel; ++i) {
      const float v = affine(offset, scale, rng.gaussian());
      d[s.offset + i] = v;
    }
  }
}

}  // namespace cs
