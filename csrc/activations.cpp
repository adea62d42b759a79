// Elementwise MLP kernels (see activations.h). Baseline code: the compiler vectorises the simple loops for the
// baseline ISA; the transcendental units call libm.
#include "activations.h"

#include <algorithm>
#include <cmath>

#include "derivative_factor.h"
#include "rowops/rowops.h"

namespace pyfastnn {

namespace {

struct named_act {
    const char* name;
    act_kind kind;
};
constexpr named_act act_table[] = {
    {"step", act_kind::step},       {"sign", act_kind::sign},       {"linear", act_kind::linear},
    {"piecewise_linear", act_kind::piecewise_linear},               {"sigmoid", act_kind::sigmoid},
    {"tanh", act_kind::tanh},       {"relu", act_kind::relu},       {"softmax", act_kind::softmax},
};

struct named_loss {
    const char* name;
    loss_kind kind;
};
constexpr named_loss loss_table[] = {
    {"squared_error", loss_kind::squared_error},
    {"hinge", loss_kind::hinge},
    {"binary_cross_entropy", loss_kind::binary_cross_entropy},
    {"cross_entropy", loss_kind::cross_entropy},
};

// Clipping of probabilities inside logs; the same constants as _ref._EPS.
template <class T>
constexpr T clip_eps();
template <>
constexpr float clip_eps<float>() { return 1e-7f; }
template <>
constexpr double clip_eps<double>() { return 1e-15; }

template <class T>
inline T sigmoid(T z) {
    // Two branches so exp never overflows: 1/(1+e^{-z}) for z >= 0, e^{z}/(1+e^{z}) for z < 0.
    const T e = std::exp(-std::fabs(z));
    return z >= 0 ? T(1) / (T(1) + e) : e / (T(1) + e);
}

inline double softplus(double z) { return std::max(z, 0.0) + std::log1p(std::exp(-std::fabs(z))); }

template <class T>
void softmax_row(std::int64_t n, T* row) {
    T mx = row[0];
    for (std::int64_t j = 1; j < n; ++j) mx = std::max(mx, row[j]);
    T sum = 0;
    for (std::int64_t j = 0; j < n; ++j) {
        row[j] = std::exp(row[j] - mx);
        sum += row[j];
    }
    for (std::int64_t j = 0; j < n; ++j) row[j] /= sum;
}

// σ applied in place to a row that already holds z (+ bias). NaN in gives NaN out for every unit, as in the
// reference backend: a NaN must reach the outputs (where it is reported), not turn into a plausible value.
template <class T>
void activate_row(act_kind act, std::int64_t n, const T* z, T* out) {
    switch (act) {
        case act_kind::step:
            for (std::int64_t j = 0; j < n; ++j)
                out[j] = z[j] > 0 ? T(1) : (z[j] < 0 ? T(0) : (z[j] == 0 ? T(0.5) : z[j]));
            break;
        case act_kind::sign:
            for (std::int64_t j = 0; j < n; ++j) out[j] = z[j] > 0 ? T(1) : (z[j] < 0 ? T(-1) : z[j] * T(0));
            break;
        case act_kind::linear:
            if (out != z) std::copy(z, z + n, out);
            break;
        case act_kind::piecewise_linear:
            for (std::int64_t j = 0; j < n; ++j) out[j] = std::min(std::max(z[j] + T(0.5), T(0)), T(1));
            break;
        case act_kind::sigmoid:
            for (std::int64_t j = 0; j < n; ++j) out[j] = sigmoid(z[j]);
            break;
        case act_kind::tanh:
            for (std::int64_t j = 0; j < n; ++j) out[j] = std::tanh(z[j]);
            break;
        case act_kind::relu:
            for (std::int64_t j = 0; j < n; ++j) out[j] = z[j] < 0 ? T(0) : z[j];
            break;
        case act_kind::softmax:
            if (out != z) std::copy(z, z + n, out);
            softmax_row(n, out);
            break;
    }
}

}  // namespace

bool parse_activation(const std::string& name, act_kind* out) {
    for (const auto& e : act_table)
        if (name == e.name) {
            *out = e.kind;
            return true;
        }
    return false;
}

bool parse_loss(const std::string& name, loss_kind* out) {
    for (const auto& e : loss_table)
        if (name == e.name) {
            *out = e.kind;
            return true;
        }
    return false;
}

const char* activation_names() { return "step, sign, linear, piecewise_linear, sigmoid, tanh, relu, softmax"; }
const char* loss_names() { return "squared_error, hinge, binary_cross_entropy, cross_entropy"; }

template <class T>
void bias_activation_forward(act_kind act, std::int64_t rows, std::int64_t cols, T* z, std::int64_t ld_z,
                             const T* bias, T* out, std::int64_t ld_out) {
    if (act == act_kind::relu && bias != nullptr && ld_z == cols && ld_out == cols) {
        active_rowops<T>().bias_relu(rows, cols, z, bias, out);  // the common case, vectorised for this CPU
        return;
    }
    if (act == act_kind::softmax && cols > 0 && ld_z == cols && ld_out == cols) {
        active_rowops<T>().softmax(rows, cols, z, bias, out);  // the output layer: no libm exp per element
        return;
    }
    for (std::int64_t i = 0; i < rows; ++i) {
        T* zr = z + i * ld_z;
        if (bias != nullptr)
            for (std::int64_t j = 0; j < cols; ++j) zr[j] += bias[j];
        activate_row(act, cols, zr, out + i * ld_out);
    }
}

template <class T>
void activation_backward(act_kind act, std::int64_t rows, std::int64_t cols, const T* a, std::int64_t ld_a,
                         const T* z, std::int64_t ld_z, T* delta, std::int64_t ld_d, bool ste) {
    if (act == act_kind::relu && ld_a == cols && ld_d == cols) {
        active_rowops<T>().relu_backward(rows * cols, a, delta);
        return;
    }
    const derivative_factors<T> f = hidden_derivative_factors<T>();
    for (std::int64_t i = 0; i < rows; ++i) {
        const T* ar = a + i * ld_a;
        T* d = delta + i * ld_d;
        switch (act) {
            case act_kind::step:
            case act_kind::sign: {
                if (!ste) {
                    for (std::int64_t j = 0; j < cols; ++j) d[j] *= T(0);  // σ' = 0 almost everywhere
                    break;
                }
                // Straight-through: the derivative of clip(z + 1/2, 0, 1) (step) or clip(z, -1, 1) (sign).
                const T half_width = act == act_kind::step ? T(0.5) : T(1);
                const T* zr = z + i * ld_z;
                for (std::int64_t j = 0; j < cols; ++j)
                    d[j] *= std::fabs(zr[j]) < half_width ? f.one : f.zero;
                break;
            }
            case act_kind::linear:
                break;
            case act_kind::piecewise_linear:
                for (std::int64_t j = 0; j < cols; ++j) d[j] *= (ar[j] > 0 && ar[j] < 1) ? f.one : f.zero;
                break;
            case act_kind::sigmoid:
                for (std::int64_t j = 0; j < cols; ++j) d[j] *= ar[j] * (T(1) - ar[j]);
                break;
            case act_kind::tanh:
                for (std::int64_t j = 0; j < cols; ++j) d[j] *= T(1) - ar[j] * ar[j];
                break;
            case act_kind::relu:
                active_rowops<T>().relu_backward(cols, ar, d);
                break;
            case act_kind::softmax: {
                // Jacobian diag(a) − a aᵀ: the product is a ⊙ (delta − ⟨delta, a⟩).
                T dot = 0;
                for (std::int64_t j = 0; j < cols; ++j) dot += d[j] * ar[j];
                for (std::int64_t j = 0; j < cols; ++j) d[j] = ar[j] * (d[j] - dot);
                break;
            }
        }
    }
}

namespace {

// C_k of one sample (a row of `cols` outputs), in double as the reference computes every loss.
template <class T>
double sample_cost(loss_kind loss, act_kind act, std::int64_t cols, const T* ar, const T* zr, const T* yr) {
    const double eps = 1e-15;
    double c = 0;
    switch (loss) {
        case loss_kind::squared_error:
            for (std::int64_t j = 0; j < cols; ++j) {
                const double r = double(yr[j]) - double(ar[j]);
                c += r * r;
            }
            break;
        case loss_kind::hinge:
            for (std::int64_t j = 0; j < cols; ++j) c += std::max(0.0, 1.0 - double(yr[j]) * double(ar[j]));
            break;
        case loss_kind::binary_cross_entropy:
            if (act == act_kind::sigmoid && zr != nullptr) {
                // softplus(z) − y z: the log-sigmoid form, exact for any z.
                for (std::int64_t j = 0; j < cols; ++j) c += softplus(double(zr[j])) - double(yr[j]) * double(zr[j]);
            } else {
                for (std::int64_t j = 0; j < cols; ++j) {
                    const double f = std::min(std::max(double(ar[j]), eps), 1 - eps);
                    c -= double(yr[j]) * std::log(f) + (1 - double(yr[j])) * std::log(1 - f);
                }
            }
            break;
        case loss_kind::cross_entropy:
            if (act == act_kind::softmax && zr != nullptr) {
                // −Σ y log softmax(z) with log-sum-exp.
                double mx = double(zr[0]);
                for (std::int64_t j = 1; j < cols; ++j) mx = std::max(mx, double(zr[j]));
                double s = 0;
                for (std::int64_t j = 0; j < cols; ++j) s += std::exp(double(zr[j]) - mx);
                const double lse = std::log(s);
                for (std::int64_t j = 0; j < cols; ++j) c -= double(yr[j]) * (double(zr[j]) - mx - lse);
            } else {
                for (std::int64_t j = 0; j < cols; ++j) c -= double(yr[j]) * std::log(std::max(double(ar[j]), eps));
            }
            break;
    }
    return c;
}

template <class T>
inline double sample_weight(const T* sw, const std::int64_t* sw_index, std::int64_t k) {
    return double(sw[sw_index != nullptr ? sw_index[k] : k]);
}

// Row k of the output delta × s_k·B/S (the gradients downstream divide by B; unit weights give a factor of
// exactly 1); all zeros when S = 0: no weight, nothing to learn.
template <class T>
void scale_delta_rows(std::int64_t rows, std::int64_t cols, T* delta, const T* sw, const std::int64_t* sw_index,
                      double weight) {
    if (!(weight > 0)) {
        std::fill(delta, delta + rows * cols, T(0));
        return;
    }
    for (std::int64_t i = 0; i < rows; ++i) {
        const T f = T(sample_weight(sw, sw_index, i) * double(rows) / weight);
        T* d = delta + i * cols;
        for (std::int64_t j = 0; j < cols; ++j) d[j] *= f;
    }
}

// Σ_k s_k C_k and S = Σ_k s_k in row order (Σ_k C_k and the row count without weights). Every loss sums through
// this, so unit weights give exactly the unweighted bits and S equals weight_sum's. A zero weight times a
// non-finite cost is NaN on purpose: a diverging sample is reported whatever its weight.
template <class T>
struct weighted_costs {
    const T* sw;
    const std::int64_t* sw_index;
    double total = 0, s_sum = 0;

    void add(std::int64_t k, double cost) {
        if (sw == nullptr) {
            total += cost;
        } else {
            const double s = sample_weight(sw, sw_index, k);
            total += s * cost;
            s_sum += s;
        }
    }
    double weight(std::int64_t rows) const { return sw == nullptr ? double(rows) : s_sum; }
    double mean(std::int64_t rows) const {
        const double w = weight(rows);
        return w > 0 ? total / w : 0.0;
    }
};

template <class T>
weighted_costs<T> loss_total(loss_kind loss, act_kind act, std::int64_t rows, std::int64_t cols, const T* a,
                             const T* z, const T* y, const T* sw, const std::int64_t* sw_index) {
    // One loop, so sample_cost has one call site and is inlined; the test of sw is loop-invariant and perfectly
    // predicted (nothing next to a row's exp/log; -O3 may unswitch it).
    weighted_costs<T> sums{sw, sw_index};
    for (std::int64_t i = 0; i < rows; ++i)
        sums.add(i, sample_cost(loss, act, cols, a + i * cols, z != nullptr ? z + i * cols : nullptr, y + i * cols));
    return sums;
}

// delta = ∂C_k/∂z^L for every sample, unweighted.
template <class T>
void output_delta(loss_kind loss, act_kind act, std::int64_t rows, std::int64_t cols, const T* a, const T* z,
                  const T* y, T* delta, bool ste) {
    const std::int64_t n = rows * cols;
    if (loss == loss_kind::binary_cross_entropy && act == act_kind::sigmoid) {
        for (std::int64_t i = 0; i < n; ++i) delta[i] = a[i] - y[i];
        return;
    }
    if (loss == loss_kind::cross_entropy && act == act_kind::softmax) {
        // ∂/∂z of −Σ y log softmax(z) is p·Σy − y (p − y for targets that sum to one).
        for (std::int64_t i = 0; i < rows; ++i) {
            const T* ar = a + i * cols;
            const T* yr = y + i * cols;
            T* d = delta + i * cols;
            T ysum = 0;
            for (std::int64_t j = 0; j < cols; ++j) ysum += yr[j];
            for (std::int64_t j = 0; j < cols; ++j) d[j] = ar[j] * ysum - yr[j];
        }
        return;
    }
    const T eps = clip_eps<T>();
    for (std::int64_t i = 0; i < n; ++i) {
        switch (loss) {
            case loss_kind::squared_error:
                delta[i] = T(2) * (a[i] - y[i]);
                break;
            case loss_kind::hinge:
                delta[i] = y[i] * a[i] < T(1) ? -y[i] : T(0);
                break;
            case loss_kind::binary_cross_entropy: {
                const T f = std::min(std::max(a[i], eps), T(1) - eps);
                delta[i] = (f - y[i]) / (f * (T(1) - f));
                break;
            }
            case loss_kind::cross_entropy:
                delta[i] = -y[i] / std::max(a[i], eps);
                break;
        }
    }
    activation_backward(act, rows, cols, a, cols, z, cols, delta, cols, ste);
}

}  // namespace

template <class T>
double weight_sum(std::int64_t rows, const T* sw, const std::int64_t* sw_index) {
    double s = 0;
    for (std::int64_t i = 0; i < rows; ++i) s += sample_weight(sw, sw_index, i);
    return s;
}

template <class T>
double loss_value(loss_kind loss, act_kind act, std::int64_t rows, std::int64_t cols, const T* a, const T* z,
                  const T* y, const T* sw, const std::int64_t* sw_index) {
    return loss_total(loss, act, rows, cols, a, z, y, sw, sw_index).mean(rows);
}

template <class T>
double loss_and_output_delta(loss_kind loss, act_kind act, std::int64_t rows, std::int64_t cols, const T* a,
                             const T* z, const T* y, T* delta, bool ste, const T* sw,
                             const std::int64_t* sw_index) {
    const weighted_costs<T> sums = loss_total(loss, act, rows, cols, a, z, y, sw, sw_index);
    output_delta(loss, act, rows, cols, a, z, y, delta, ste);
    if (sw != nullptr) scale_delta_rows(rows, cols, delta, sw, sw_index, sums.weight(rows));
    return sums.mean(rows);
}

template <class T>
double softmax_cross_entropy(std::int64_t rows, std::int64_t cols, const T* a, const T* z, const T* y, T* delta,
                             const T* sw, const std::int64_t* sw_index) {
    // −Σ y log softmax(z) = Σ_j y_j (max z − z_j) + Σy · log s with s = Σ_j exp(z_j − max z), as loss_value has it;
    // but the output at the arg max of z is exp(0) / s, so log s = −log a[arg max]. That output is >= 1/cols, so
    // it cannot underflow, and its rounding moves the loss by ~1e-7 (float32) where the exps cost one libm call
    // per element (~2 µs of a 30 µs step at 32 x 10). Weights as in loss_and_output_delta: the same sums in the
    // same order, so unit weights give the unweighted bits.
    weighted_costs<T> sums{sw, sw_index};
    for (std::int64_t i = 0; i < rows; ++i) {
        const T* ar = a + i * cols;
        const T* zr = z + i * cols;
        const T* yr = y + i * cols;
        T* d = delta + i * cols;
        std::int64_t jm = 0;
        for (std::int64_t j = 1; j < cols; ++j)
            if (zr[j] > zr[jm]) jm = j;
        const double mx = double(zr[jm]);
        double c = 0, ysum_d = 0;
        T ysum = 0;
        for (std::int64_t j = 0; j < cols; ++j) {
            c += double(yr[j]) * (mx - double(zr[j]));
            ysum_d += double(yr[j]);
            ysum += yr[j];
        }
        c -= ysum_d * std::log(double(ar[jm]));
        for (std::int64_t j = 0; j < cols; ++j) d[j] = ar[j] * ysum - yr[j];  // as loss_and_output_delta
        sums.add(i, c);
    }
    if (sw != nullptr) scale_delta_rows(rows, cols, delta, sw, sw_index, sums.weight(rows));
    return sums.mean(rows);
}

template <class T>
void column_sums(std::int64_t rows, std::int64_t cols, const T* delta, std::int64_t ld, T scale, T* db) {
    std::fill(db, db + cols, T(0));
    for (std::int64_t i = 0; i < rows; ++i) {
        const T* d = delta + i * ld;
        for (std::int64_t j = 0; j < cols; ++j) db[j] += d[j];
    }
    for (std::int64_t j = 0; j < cols; ++j) db[j] *= scale;
}

#define PYFASTNN_INSTANTIATE(T)                                                                                 \
    template void bias_activation_forward<T>(act_kind, std::int64_t, std::int64_t, T*, std::int64_t, const T*, \
                                             T*, std::int64_t);                                                 \
    template void activation_backward<T>(act_kind, std::int64_t, std::int64_t, const T*, std::int64_t,         \
                                         const T*, std::int64_t, T*, std::int64_t, bool);                       \
    template double weight_sum<T>(std::int64_t, const T*, const std::int64_t*);                                \
    template double loss_value<T>(loss_kind, act_kind, std::int64_t, std::int64_t, const T*, const T*,         \
                                  const T*, const T*, const std::int64_t*);                                     \
    template double loss_and_output_delta<T>(loss_kind, act_kind, std::int64_t, std::int64_t, const T*,        \
                                             const T*, const T*, T*, bool, const T*, const std::int64_t*);      \
    template double softmax_cross_entropy<T>(std::int64_t, std::int64_t, const T*, const T*, const T*, T*,      \
                                             const T*, const std::int64_t*);                                    \
    template void column_sums<T>(std::int64_t, std::int64_t, const T*, std::int64_t, T, T*);

PYFASTNN_INSTANTIATE(float)
PYFASTNN_INSTANTIATE(double)
#undef PYFASTNN_INSTANTIATE

}  // namespace pyfastnn
