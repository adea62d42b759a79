"""The programs that tests/test_distributed.py runs under mpiexec: ``python _distributed_job.py MODE``.

Each prints lines "RESULT <json>" on rank 0 for the test to check; every MPI rank runs the same program."""

import json
import os
import sys

import numpy as np
from mpi4py import MPI

import pyfastnn as pf
from pyfastnn.distributed import abort_on_error, parameters_digest

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()


def result(**values):
    if rank == 0:
        print("RESULT " + json.dumps(values), flush=True)


def data(n, features=7, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, features)), rng.integers(0, classes, n)


def interleaved_rows(n, b):
    """Rank r's rows such that step k of every rank together covers rows [k·N·b, (k+1)·N·b) in order: what one
    process with batch N·b visits in its step k."""
    steps = -(-n // (size * b))
    parts = [np.arange(k * size * b + rank * b, min(k * size * b + (rank + 1) * b, n)) for k in range(steps)]
    return np.concatenate(parts).astype(np.int64)


OPTIMIZERS = {
    "sgd": lambda: pf.SGD(lr=0.1),
    "momentum": lambda: pf.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam": lambda: pf.Adam(lr=0.01, weight_decay=1e-3),
}


def relative_error(a_list, b_list):
    return max(float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)) for a, b in zip(a_list, b_list))


def oracle(sparse=False):
    """N ranks with per-rank batch b on interleaved shards against one process with batch N·b, unshuffled."""
    b, n = 5, 53  # 53 rows: a short last global batch, and with 3 ranks a rank with fewer rows in it
    x, y = data(n)
    if sparse:
        import scipy.sparse

        x[np.abs(x) < 0.8] = 0.0
        x = scipy.sparse.csr_matrix(x)
    rows = interleaved_rows(n, b)
    out = {}
    for name, make in OPTIMIZERS.items():
        if sparse and name != "sgd":
            continue
        # Rank 0's initial weights are broadcast: the others start from other ones on purpose.
        net = pf.MLP([7, 6, 3], dtype=np.float64, seed=1 if rank == 0 else 50 + rank)
        hist = net.fit(x[rows], y[rows], optimizer=make(), batch_size=b, epochs=3, shuffle=False, comm=comm,
                       check_replicas=True, progress=False)
        ref = pf.MLP([7, 6, 3], dtype=np.float64, seed=1)
        ref_hist = ref.fit(x, y, optimizer=make(), batch_size=size * b, epochs=3, shuffle=False,
                           progress=False)
        out[name] = {
            "weights": relative_error(net.weights + net.biases, ref.weights + ref.biases),
            "loss": relative_error([np.array(hist["loss"])], [np.array(ref_hist["loss"])]),
            "moved": relative_error(net.weights, pf.MLP([7, 6, 3], dtype=np.float64, seed=1).weights),
            "digests": comm.allgather(parameters_digest(net)),
        }
    result(**out)


def replicas():
    """Shuffled, uneven shards with sample weights, validation data, a schedule and early stopping: every
    rank ends with the same parameters and the same history."""
    x, y = data(200 + 37 * rank, seed=10 + rank)  # each rank its own data, of its own size
    xv, yv = data(40 + 5 * rank, seed=20 + rank)
    sw = np.random.default_rng(rank).uniform(0.5, 2.0, x.shape[0])
    seen = []
    net = pf.MLP([7, 16, 3], dtype=np.float32, seed=0)
    hist = net.fit(x, y, optimizer=pf.Adam(lr=0.01), batch_size=16, epochs=6, seed=3, sample_weight=sw,
                   validation_data=(xv, yv), early_stopping=True, patience=2, lr_schedule="step",
                   callbacks=[lambda epoch, logs: seen.append(dict(logs)) and False], comm=comm,
                   check_replicas=True, progress=False)
    histories = comm.allgather((hist.history, hist.epochs, hist.stop_reason, hist.best_epoch))
    logs = comm.allgather(seen)
    result(digests=comm.allgather(parameters_digest(net)),
           same_history=all(h == histories[0] for h in histories), same_logs=all(s == logs[0] for s in logs),
           epochs=hist.epochs, keys=sorted(hist.history))


def raises_mid_training():
    """Rank size−1 raises in a callback of epoch 2 while the others go on into the next allreduce."""
    x, y = data(300, seed=rank)

    def fail(epoch, logs):
        if rank == size - 1 and epoch == 2:
            raise RuntimeError(f"rank {rank} fails on purpose in epoch {epoch}")
        return False

    with abort_on_error():
        net = pf.MLP([7, 8, 3], seed=0)
        net.fit(x, y, batch_size=8, epochs=1000, callbacks=[fail], comm=comm, progress=False)
    result(finished=True)  # not reached


def killed_mid_training():
    """Rank size−1 dies from SIGKILL in epoch 2 (no Python exception, no abort_on_error to call)."""
    import signal

    x, y = data(300, seed=rank)

    def die(epoch, logs):
        if rank == size - 1 and epoch == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return False

    pf.MLP([7, 8, 3], seed=0).fit(x, y, batch_size=8, epochs=1000, callbacks=[die], comm=comm, progress=False)
    result(finished=True)  # not reached


def diverges():
    """Rank 1's shard makes the loss overflow: every rank raises FloatingPointError in the same epoch."""
    x, y = data(64, seed=rank)
    if rank == 1:
        x[5] = 1e30
    try:
        pf.MLP([7, 8, 3], seed=0).fit(x, y, batch_size=8, epochs=3, seed=0, comm=comm, progress=False)
    except FloatingPointError as exc:
        print(f"RANK {rank} FloatingPointError: {exc}", flush=True)
        return
    print(f"RANK {rank} trained", flush=True)


def fails_before_training():
    """Rank 1's data has the wrong number of features: every rank raises, none waits."""
    x, y = data(50, features=7 if rank != 1 else 5)
    try:
        pf.MLP([7, 8, 3], seed=0).fit(x, y, epochs=2, comm=comm, progress=False)
    except ValueError as exc:
        print(f"RANK {rank} ValueError: {exc}", flush=True)
        return
    print(f"RANK {rank} trained", flush=True)


def mismatch():
    """The ranks build different networks and optimizers: ValueError on every rank, naming what differs."""
    x, y = data(50)
    hidden = 8 if rank == 0 else 9
    try:
        pf.MLP([7, hidden, 3], seed=0).fit(x, y, optimizer=pf.SGD(lr=0.1 * (rank + 1)), epochs=2, comm=comm,
                                           progress=False)
    except ValueError as exc:
        print(f"RANK {rank} ValueError: {exc}", flush=True)
        return
    print(f"RANK {rank} trained", flush=True)


def estimator():
    """MLPClassifier.fit(comm=...) on interleaved shards against one process with N times the batch; the
    estimator stays picklable and clonable."""
    import pickle

    from sklearn.base import clone

    b, n = 8, 90
    x, y = data(n)
    y = np.array(["a", "b", "c"])[y]
    rows = interleaved_rows(n, b)
    params = dict(hidden_layer_sizes=(6,), solver="sgd", momentum=0.9, alpha=1e-3, batch_size=b, max_iter=4,
                  shuffle=False, random_state=0, dtype=np.float64)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the ConvergenceWarning of max_iter=4
        est = pf.MLPClassifier(**params).fit(x[rows], y[rows], comm=comm)
        ref = pf.MLPClassifier(**{**params, "batch_size": size * b}).fit(x, y)
    result(weights=relative_error(est.net_.weights + est.net_.biases, ref.net_.weights + ref.net_.biases),
           loss=relative_error([np.array(est.loss_curve_)], [np.array(ref.loss_curve_)]),
           classes=est.classes_.tolist(), digests=comm.allgather(parameters_digest(est.net_)),
           pickled=pickle.loads(pickle.dumps(est)).score(x, y) == est.score(x, y),
           cloned=clone(est).get_params() == est.get_params())



def same_history(a, b):
    """Whether two Histories hold the same values (but for the times)."""
    return {k: v for k, v in a.history.items() if k != "time"} == {k: v for k, v in b.history.items() if k != "time"}


def checkpointed(folder, epochs, path=None, callbacks=(), resume=False, seed=None):
    """A distributed run writing checkpoints: 3 uneven shuffled shards, seed=None by default (the drawn
    shuffling seed and each rank's validation split must come back from the file), Adam, early stopping."""
    x, y = data(90 + 17 * rank, seed=20 + rank)
    net = pf.MLP([7, 6, 3], dtype=np.float64, seed=1)
    history = net.fit(x, y, optimizer=pf.Adam(lr=0.01), batch_size=6, epochs=epochs, seed=seed, comm=comm,
                      early_stopping=True, validation_fraction=0.2, patience=100, progress=False,
                      checkpoint=path or f"{folder}/whole.npz", callbacks=list(callbacks), resume=resume)
    return net, history


def resume_equals_whole():
    """A run resumed from its own checkpoint of epoch 2 (copied during the run) ends like the run; ranks
    other than 0 pass a path in a folder they do not have (only rank 0 reads and writes the file)."""
    import shutil

    folder = sys.argv[2]

    def keep(epoch, logs):  # callbacks run before the epoch's checkpoint: epoch 3's see epoch 2's file
        if epoch == 3 and rank == 0:
            shutil.copy(f"{folder}/whole.npz", f"{folder}/part.npz")
        return False

    whole, whole_history = checkpointed(folder, 5, callbacks=[keep])
    part = f"{folder}/part.npz" if rank == 0 else f"{folder}/rank-{rank}-has-no-such-folder/part.npz"
    resumed, history = checkpointed(folder, 5, path=part, resume=True)
    result(equal=comm.allgather(parameters_digest(resumed) == parameters_digest(whole)),
           digests=comm.allgather(parameters_digest(resumed)),
           history=comm.allgather(same_history(history, whole_history)),
           val_loss=whole_history["val_loss"])


def killed_while_checkpointing():
    """Phase 1 of a crash: rank size-1 dies from SIGKILL in epoch 3, after the checkpoint of epoch 2."""
    import signal

    def die(epoch, logs):
        if rank == size - 1 and epoch == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        return False

    checkpointed(sys.argv[2], 5, path=f"{sys.argv[2]}/crashed.npz", callbacks=[die], seed=3)
    result(finished=True)  # not reached


def resumed_after_the_kill():
    """Phase 2: resume the killed run; it ends as a run that was never interrupted."""
    from pyfastnn._checkpoint import load_checkpoint

    folder = sys.argv[2]
    after = load_checkpoint(f"{folder}/crashed.npz").epoch if rank == 0 else None
    whole, whole_history = checkpointed(folder, 5, path=f"{folder}/never.npz", seed=3)
    resumed, history = checkpointed(folder, 5, path=f"{folder}/crashed.npz", resume=True, seed=3)
    result(equal=comm.allgather(parameters_digest(resumed) == parameters_digest(whole)),
           history=comm.allgather(same_history(history, whole_history)), resumed_after=after)


def resume_with_other_ranks():
    """A checkpoint of 3 ranks resumed by 2 (or the reverse): ValueError on every rank."""
    try:
        checkpointed(sys.argv[2], 5, path=f"{sys.argv[2]}/whole.npz", resume=True)
    except ValueError as exc:
        print(f"RANK {rank} ValueError: {exc}", flush=True)
        return
    print(f"RANK {rank} trained", flush=True)


def checkpoint_write_fails():
    """Rank 0 cannot write the checkpoint of epoch 2 (its folder is gone): every rank raises, none waits."""
    import shutil

    folder = f"{sys.argv[2]}/vanishing"

    def remove(epoch, logs):
        if epoch == 2 and rank == 0:
            shutil.rmtree(folder)
        return False

    if rank == 0:
        os.makedirs(folder)
    comm.Barrier()
    try:
        checkpointed(folder, 4, path=f"{folder}/run.npz", callbacks=[remove])
    except (OSError, RuntimeError) as exc:
        print(f"RANK {rank} {type(exc).__name__}: {exc}", flush=True)
        return
    print(f"RANK {rank} trained", flush=True)


if __name__ == "__main__":
    {"oracle": oracle, "oracle_sparse": lambda: oracle(sparse=True), "replicas": replicas,
     "raises_mid_training": raises_mid_training, "fails_before_training": fails_before_training,
     "mismatch": mismatch, "estimator": estimator, "killed_mid_training": killed_mid_training,
     "diverges": diverges, "resume_equals_whole": resume_equals_whole,
     "killed_while_checkpointing": killed_while_checkpointing, "resumed_after_the_kill": resumed_after_the_kill,
     "resume_with_other_ranks": resume_with_other_ranks, "checkpoint_write_fails": checkpoint_write_fails,
     }[sys.argv[1]]()
