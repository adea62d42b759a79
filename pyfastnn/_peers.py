"""Peer implementations of one MLP training step, for ``pyfastnn bench`` and the benchmarks in benchmarks/.

Every peer trains the network of the standard benchmark shapes: ReLU hidden layers, softmax + cross-entropy
output, plain SGD, float32, weights W^l of shape (N_l, N_{l-1}) as in pyfastnn. Each is written the way a
competent user of that library would write it, not tuned against pyfastnn:

* ``NumpyMLP``: hand-written NumPy of the formulas of backpropagation, with preallocated ``out=`` buffers,

      Z = A Wᵀ + b,  A = relu(Z),  P = softmax(Z^L),  Δ^L = P − Y,
      Δ^{l-1} = (Δ^l W^l) ⊙ (A^{l-1} > 0),  ∂W = Δᵀ A / B,  ∂b = mean Δ,  W −= lr ∂W.

* ``TorchMLP``: ``torch.nn.Sequential`` of Linear + ReLU, ``CrossEntropyLoss``, ``torch.optim.SGD``, the usual
  ``zero_grad / backward / step`` loop over batches of a tensor.

* ``SklearnMLP``: scikit-learn's ``MLPClassifier(solver="sgd", momentum=0, alpha=0, batch_size=B,
  shuffle=False)``; one ``partial_fit(X, y)`` call is one pass over X in consecutive batches of B rows, one SGD
  step per batch: the same inner loop as ``MLPClassifier.fit`` runs for each of its epochs.

All loop over consecutive batches of an array that is already in random order (the benchmark's data are
i.i.d. random rows), like ``pyfastnn.fit(..., shuffle=False)``. torch and scikit-learn are imported only when
their peer is made: neither is a dependency of pyfastnn.
"""

import numpy as np


class NumpyMLP:
    """Hand-written NumPy MLP trainer with buffers preallocated for batches of up to ``max_batch`` rows."""

    def __init__(self, weights, biases, max_batch):
        self.weights = [np.array(w, dtype=np.float32, order="C") for w in weights]
        self.biases = [np.array(b, dtype=np.float32) for b in biases]
        sizes = [self.weights[0].shape[1]] + [w.shape[0] for w in self.weights]
        self.sizes = sizes
        self.acts = [np.empty((max_batch, n), np.float32) for n in sizes[1:]]  # Z, then A in place
        self.deltas = [np.empty((max_batch, n), np.float32) for n in sizes[1:]]
        self.masks = [np.empty((max_batch, n), np.bool_) for n in sizes[1:-1]]
        self.dw = [np.empty_like(w) for w in self.weights]
        self.db = [np.empty_like(b) for b in self.biases]
        self.rowmax = np.empty((max_batch, 1), np.float32)
        self.rowsum = np.empty((max_batch, 1), np.float32)
        self.index = np.arange(max_batch)

    def train_step(self, x, labels, lr):
        """One SGD step on the batch (x, integer labels); returns the batch-mean loss before the update."""
        return train_step(self, x, labels, lr)

    def train_epoch(self, x, labels, batch, lr):
        """SGD over consecutive batches of x; returns the sum of batch loss × rows."""
        total = 0.0
        for lo in range(0, x.shape[0], batch):
            xb = x[lo : lo + batch]
            total += train_step(self, xb, labels[lo : lo + batch], lr) * xb.shape[0]
        return total

    def loss(self, x, labels):
        """Batch-mean cross-entropy of the current weights."""
        return ce_loss(self.weights, self.biases, x, labels)


def ce_loss(weights, biases, x, labels):
    """Batch-mean softmax cross-entropy of a ReLU MLP with the given parameters, in float64 (log-sum-exp)."""
    a = x.astype(np.float64)
    for l, (w, b) in enumerate(zip(weights, biases)):
        a = a @ np.asarray(w, np.float64).T + np.asarray(b, np.float64)
        if l < len(weights) - 1:
            a = np.maximum(a, 0)
    a -= a.max(axis=1, keepdims=True)
    lse = np.log(np.exp(a).sum(axis=1))
    return float(np.mean(lse - a[np.arange(len(labels)), labels]))


def train_step(m, x, labels, lr):
    """The plain function: forward, softmax + CE, backward, SGD update, in m's preallocated buffers."""
    rows = x.shape[0]
    n_layers = len(m.weights)
    idx = m.index[:rows]
    # forward
    a = x
    for l in range(n_layers):
        z = m.acts[l][:rows]
        np.matmul(a, m.weights[l].T, out=z)
        z += m.biases[l]
        if l < n_layers - 1:
            np.maximum(z, 0.0, out=z)  # ReLU in place: A overwrites Z (σ' is read from A > 0)
        a = z
    # softmax + cross-entropy (log-sum-exp), Δ^L = P − Y written over Z^L
    p = a
    mx = m.rowmax[:rows]
    s = m.rowsum[:rows]
    np.max(p, axis=1, keepdims=True, out=mx)
    p -= mx
    z_true = p[idx, labels]  # z_y − max, before exp
    np.exp(p, out=p)
    np.sum(p, axis=1, keepdims=True, out=s)
    loss = float(np.mean(np.log(s[:, 0]) - z_true))
    p /= s
    p[idx, labels] -= 1.0
    delta = p
    # backward + update, top layer first; Δ^{l-1} uses the old W, so it is computed before W changes
    scale = lr / rows
    for l in range(n_layers - 1, -1, -1):
        a_prev = x if l == 0 else m.acts[l - 1][:rows]
        w = m.weights[l]
        if l > 0:
            d_prev = m.deltas[l - 1][:rows]
            np.matmul(delta, w, out=d_prev)
            mask = m.masks[l - 1][:rows]
            np.greater(a_prev, 0.0, out=mask)
            np.multiply(d_prev, mask, out=d_prev)
        dw = m.dw[l]
        np.matmul(delta.T, a_prev, out=dw)
        dw *= scale
        w -= dw
        db = m.db[l]
        np.sum(delta, axis=0, out=db)
        db *= scale
        m.biases[l] -= db
        if l > 0:
            delta = d_prev
    return loss


class TorchMLP:
    """The same network in PyTorch, trained with the textbook loop; ``optimizer`` is "sgd" (``optim.SGD``) or
    "adam" (``optim.Adam`` with its defaults, which are pyfastnn's: betas 0.9, 0.999, eps 1e-8)."""

    def __init__(self, weights, biases, lr, optimizer="sgd"):
        import torch

        self.torch = torch
        layers = []
        for l, (w, b) in enumerate(zip(weights, biases)):
            lin = torch.nn.Linear(w.shape[1], w.shape[0])
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32)))
                lin.bias.copy_(torch.from_numpy(np.ascontiguousarray(b, dtype=np.float32)))
            layers.append(lin)
            if l < len(weights) - 1:
                layers.append(torch.nn.ReLU())
        self.model = torch.nn.Sequential(*layers)
        self.loss_fn = torch.nn.CrossEntropyLoss()
        if optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam'; got {optimizer!r}")
        make = torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam
        self.opt = make(self.model.parameters(), lr=lr)

    def tensors(self, x, labels):
        """Inputs as tensors (x shares memory with the NumPy array)."""
        return self.torch.from_numpy(x), self.torch.from_numpy(labels.astype(np.int64))

    def train_epoch(self, xt, yt, batch, order=None):
        """One step per batch of consecutive rows, or of rows ``order[lo:lo + batch]`` when ``order`` (a
        permutation tensor, a shuffled epoch) is given; returns the sum of batch loss × rows."""
        model, loss_fn, opt = self.model, self.loss_fn, self.opt
        total = 0.0
        for lo in range(0, xt.shape[0], batch):
            if order is None:
                xb, yb = xt[lo : lo + batch], yt[lo : lo + batch]
            else:
                idx = order[lo : lo + batch]
                xb, yb = xt[idx], yt[idx]
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            total += loss.item() * xb.shape[0]
        return total

    def weights(self):
        lins = [m for m in self.model if isinstance(m, self.torch.nn.Linear)]
        weights = [m.weight.detach().numpy().copy() for m in lins]
        return weights, [m.bias.detach().numpy().copy() for m in lins]


class SklearnMLP:
    """The same network as scikit-learn's MLPClassifier trained by plain SGD, one epoch per ``partial_fit``.

    ``MLPClassifier(solver="sgd", learning_rate_init=lr, momentum=0, alpha=0, batch_size=batch,
    shuffle=False)``: each ``partial_fit(X, y)`` call takes one SGD step per ``batch`` consecutive rows of X
    (the last step takes the rest), exactly the loop ``fit`` runs once per epoch; its per-call work (input
    validation, one-hot labels) is paid once per call, as pyfastnn's ``fit`` pays its own once per call.
    Needs at least 3 outputs (with 2 classes scikit-learn uses one logistic output instead of a softmax).
    ``solver="adam"`` and ``shuffle=True`` give ``fit``'s epoch with Adam on rows in a new order each pass.
    """

    def __init__(self, weights, biases, lr, batch, solver="sgd", shuffle=False):
        from sklearn.neural_network import MLPClassifier

        weights = [np.asarray(w, dtype=np.float32) for w in weights]
        n_in, n_out = weights[0].shape[1], weights[-1].shape[0]
        if n_out < 3:
            raise ValueError(f"the scikit-learn peer needs at least 3 outputs (a softmax); got {n_out}")
        self.clf = MLPClassifier(hidden_layer_sizes=tuple(w.shape[0] for w in weights[:-1]), activation="relu",
                                 solver=solver, learning_rate="constant", learning_rate_init=lr, momentum=0.0,
                                 nesterovs_momentum=False, alpha=0.0, batch_size=batch, shuffle=shuffle,
                                 random_state=0)
        # The first partial_fit creates the parameters (float32, from the dtype of X) and takes one step; the
        # given weights then overwrite them in place (scikit-learn stores W^l transposed, (N_{l-1}, N_l)).
        self.clf.partial_fit(np.zeros((batch, n_in), np.float32), np.arange(batch) % n_out,
                             classes=np.arange(n_out))
        for c, i, w, b in zip(self.clf.coefs_, self.clf.intercepts_, weights, biases):
            c[...] = w.T
            i[...] = np.asarray(b, dtype=np.float32)
        # That first step left optimizer state (Adam's moments and step count) behind: the next partial_fit
        # starts a fresh optimizer on the given weights.
        self.clf.__dict__.pop("_optimizer", None)  # private: another version may keep it elsewhere

    def train_epoch(self, x, labels):
        """One SGD step per ``batch`` consecutive rows of x; returns the sum of batch loss × rows."""
        self.clf.partial_fit(x, labels)
        return float(self.clf.loss_) * x.shape[0]

    def weights(self):
        """(weights, biases) in pyfastnn's layout, copies."""
        return ([np.ascontiguousarray(c.T) for c in self.clf.coefs_],
                [i.copy() for i in self.clf.intercepts_])


def blas_info():
    """NumPy's BLAS as threadpoolctl sees it: library, version, kernel and threads."""
    try:
        import threadpoolctl
    except ImportError:
        return "unknown (threadpoolctl not installed)"
    infos = [i for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"]
    if not infos:
        return "none found by threadpoolctl"
    return "; ".join(f"{i.get('internal_api')} {i.get('version')} kernel={i.get('architecture')} "
                     f"threads={i.get('num_threads')}" for i in infos)
