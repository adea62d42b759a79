// The derivative of a piecewise activation (ReLU, piecewise-linear, the straight-through step and sign) is 1 or 0,
// applied to a delta as delta · σ' so that a NaN or infinite delta gives NaN, as in the reference backend.
// Portable header: no ISA code.
#pragma once

namespace pyfastnn {

// The factors 1 and 0, with their values hidden from the optimiser. With literal constants GCC folds d · 1 to d
// and then sinks d · 0 into a branch on the condition (a multiply might trap, so it is not done on both sides):
// a scalar loop whose branch on the sign of z mispredicts half the time, ~9 instructions and several cycles an
// element. With factors it cannot see, the loop is a compare, a blend and a multiply on whole vectors.
template <class T>
struct derivative_factors {
    T one, zero;
};

template <class T>
inline derivative_factors<T> hidden_derivative_factors() {
    derivative_factors<T> f{T(1), T(0)};
    __asm__("" : "+m"(f.one), "+m"(f.zero));
    return f;
}

}  // namespace pyfastnn
