// A small deterministic PRNG (SplitMix64): the same numbers on every platform
// and compiler (no std:: distributions), and its whole state is one word, so a
// trainer can save and restore it. Used for repeated random tokens
// (core/induction.h), training data and initialisation (src/train), random
// test models, the composition baseline (core/composition.h).
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
  // Approximately N(0, 1) (Irwin-Hall, bounded to +-6; at most 19
  // significant bits, so scaled by a float it is exact in double).
  double gaussian();
  uint64_t state() const { return state_; }
  void set_state(uint64_t s) { state_ = s; }

 private:
  uint64_t state_;
};

}  // namespace cs
