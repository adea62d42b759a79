// Elementwise work of an MLP: activations σ and their vector-Jacobian products, bias add and bias gradient,
// losses and output deltas. Row-major (rows = samples) with explicit row strides. Portable header.
//
// The formulas mirror pyfastnn/_ref.py line by line (the oracle), so float64 results agree to rounding.
#pragma once

#include <cstdint>
#include <string>

namespace pyfastnn {

enum class act_kind : int { step, sign, linear, piecewise_linear, sigmoid, tanh, relu, softmax };
enum class loss_kind : int { squared_error, hinge, binary_cross_entropy, cross_entropy };

// Parse a public name; return false if unknown.
bool parse_activation(const std::string& name, act_kind* out);
bool parse_loss(const std::string& name, loss_kind* out);
const char* activation_names();  // "step, sign, ..." for error messages
const char* loss_names();

// out = σ(z + bias) for a rows x cols block (bias may be null: no add). If keep_z, z is overwritten with
// z + bias first (so it holds the pre-activation afterwards); out may equal z.
template <class T>
void bias_activation_forward(act_kind act, std::int64_t rows, std::int64_t cols, T* z, std::int64_t ld_z,
                             const T* bias, T* out, std::int64_t ld_out);

// delta ← Jσᵀ delta row by row (σ'(z) ⊙ delta for the elementwise units). z is needed only for step/sign with
// the straight-through estimator (ste); it may be null otherwise.
template <class T>
void activation_backward(act_kind act, std::int64_t rows, std::int64_t cols, const T* a, std::int64_t ld_a,
                         const T* z, std::int64_t ld_z, T* delta, std::int64_t ld_d, bool ste);

// Sample weights. A batch may carry one weight s_k >= 0 per row: s_k = sw[sw_index[k]] when sw_index is given
// (a shuffled batch reads the weights of its original rows), else sw[k]; sw null means no weights. The loss is
// then the weighted mean Σ s_k C_k / S (S = Σ s_k, accumulated in double in row order), 0 when S = 0, and row k
// of the output delta is multiplied by s_k·B/S, so the 1/B downstream gives the gradients of the weighted mean.
template <class T>
double weight_sum(std::int64_t rows, const T* sw, const std::int64_t* sw_index);

// Batch-mean (or weighted-mean) loss, accumulated in double. z (the output pre-activation) is used for the
// stable sigmoid+BCE and softmax+CE forms; it may be null for other pairs.
template <class T>
double loss_value(loss_kind loss, act_kind act, std::int64_t rows, std::int64_t cols, const T* a,
                  const T* z, const T* y, const T* sw = nullptr, const std::int64_t* sw_index = nullptr);

// Batch-mean (or weighted-mean) loss, and delta = ∂C_k/∂z^L for every sample (not divided by the batch size;
// with weights, times s_k·B/S, and all zeros when S = 0). All arrays are contiguous rows x cols. This is the
// one place any output delta is made: every backward and training path starts from it.
template <class T>
double loss_and_output_delta(loss_kind loss, act_kind act, std::int64_t rows, std::int64_t cols, const T* a,
                             const T* z, const T* y, T* delta, bool ste, const T* sw = nullptr,
                             const std::int64_t* sw_index = nullptr);

// loss_and_output_delta for softmax + cross-entropy when a is the softmax of z (as the forward pass left them),
// which lets the loss take one log per row instead of one exp per element. Same results to rounding; the same
// sample weights (unit weights give exactly the unweighted result).
template <class T>
double softmax_cross_entropy(std::int64_t rows, std::int64_t cols, const T* a, const T* z, const T* y, T* delta,
                             const T* sw = nullptr, const std::int64_t* sw_index = nullptr);

// db[j] = scale · Σ_i delta[i, j]  (scale = 1/B gives the bias gradient of the mean loss).
template <class T>
void column_sums(std::int64_t rows, std::int64_t cols, const T* delta, std::int64_t ld, T scale, T* db);

}  // namespace pyfastnn
