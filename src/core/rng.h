// A small deterministic PRNG (SplitMix64): the same numbers on every platform
// and compiler (no std:: distributions), and its whole state is one word, so a
// trainer can save and restore it. Used for repeated random tokens
// (core/induction.h), training data and initialisation (src/train), random
// test models. The member functions are defined in core/induction.cpp.
#pragma once
#include <cstdint>

namespace cs {

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) : state_(seed) {}
  uint64_t next();
  // Uniform in [0, n) (n > 0), without modulo bias (rejection sampling).
  uint64_t below(uint64_t n);
  // Uniform in [0, 1) with 53 random bits.
  double uniform();
  uint64_t state() const { return state_; }
  void set_state(uint64_t s) { state_ = s; }

 private:
  uint64_t state_;
};

}  // namespace cs
