"""A text classifier that keeps everything it needs: the bag-of-words featurizer (with its vocabulary), the
network and the class names. It predicts on raw strings, and saves to one model file without pickle."""

import json
import numbers

import numpy as np

# The featurizer parameters a model file records. Callables (preprocessor, tokenizer, analyzer) are code, which
# a file without pickle cannot hold; file inputs make no sense for predict().
_SAVED_PARAMS = {
    "BagOfWords": ("encoding", "decode_error", "lowercase", "stop_words", "token_pattern", "ngram_range",
                   "binary", "dtype"),
    "HashingBagOfWords": ("encoding", "decode_error", "lowercase", "stop_words", "token_pattern",
                          "ngram_range", "n_features", "binary", "dtype"),
}


def _featurizer_classes():
    from .vectorizers import BagOfWords, HashingBagOfWords

    return {"BagOfWords": BagOfWords, "HashingBagOfWords": HashingBagOfWords}


class TextClassifier:
    """Documents → bag of words → MLP → classes.

    Parameters
    ----------
    featurizer : pyfastnn.text.BagOfWords (fitted) or HashingBagOfWords
        Turns a list of str into the network's sparse inputs; its number of features is N_0.
    net : pyfastnn.MLP
        Trained on the featurizer's output: softmax outputs (one per class), or one sigmoid output for two
        classes.
    classes : sequence of str or int
        The class of each output (of the 0 / 1 values for a single sigmoid output).

    Examples
    --------
    >>> clf = pf.load("sentiment-model.npz")                          # written by `pyfastnn train --text`
    >>> clf.predict(["what a lovely film", "the worst food in town"])
    array(['positive', 'negative'], dtype='<U8')
    """

    def __init__(self, featurizer, net, classes):
        from ..network import MLP

        names = _featurizer_classes()
        if type(featurizer).__name__ not in names or not isinstance(featurizer, tuple(names.values())):
            raise TypeError(f"featurizer must be a pyfastnn.text.BagOfWords or HashingBagOfWords; got "
                            f"{type(featurizer).__name__}")
        if not isinstance(net, MLP):
            raise TypeError(f"net must be a pyfastnn.MLP; got {type(net).__name__}")
        classes = list(classes)
        n_out = net.layer_sizes[-1]
        if len(classes) != max(n_out, 2) or (n_out == 1 and net.output_activation != "sigmoid"):
            raise ValueError(f"a network with {n_out} output(s) ({net.output_activation}) classifies into "
                             f"{max(n_out, 2)} classes; got {len(classes)} class names")
        n_features = _n_features(featurizer)
        if n_features != net.layer_sizes[0]:
            raise ValueError(f"the featurizer makes {n_features} features but the network takes "
                             f"{net.layer_sizes[0]} inputs")
        self.featurizer = featurizer
        self.net = net
        self.classes_ = np.asarray(classes)

    def __repr__(self):
        return (f"TextClassifier({type(self.featurizer).__name__} of {self.net.layer_sizes[0]:,} features, "
                f"{self.net!r}, classes={self.classes_.tolist()!r})")

    def transform(self, texts):
        """The network's inputs for ``texts`` (a list of str): a scipy.sparse CSR matrix."""
        if isinstance(texts, (str, bytes)):
            raise TypeError("texts must be a list of documents; got a single string (wrap it in a list)")
        return self.featurizer.transform(texts)

    def predict_proba(self, texts):
        """Class probabilities, (n_texts, n_classes), in the order of ``classes_``."""
        f = self.net.predict(self.transform(texts)).astype(np.float64)
        if f.shape[1] == 1:
            return np.hstack([1.0 - f, f])
        return f / f.sum(axis=1, keepdims=True)

    def predict(self, texts):
        """The most probable class of each text."""
        return self.classes_[np.argmax(self.predict_proba(texts), axis=1)]

    def save(self, path):
        """Write the featurizer, its vocabulary, the network and the classes to one model file (see
        :mod:`pyfastnn.io`); :func:`pyfastnn.load` gives the TextClassifier back."""
        from ..io import save

        header, arrays = self._saved_form()
        save(self.net, path, text=(header, arrays))

    def _saved_form(self):
        """(JSON-able description, arrays) of the featurizer and the classes."""
        name = type(self.featurizer).__name__
        params = self.featurizer.get_params()
        for key in ("preprocessor", "tokenizer"):
            if params.get(key) is not None:
                raise ValueError(f"a featurizer with a callable {key} cannot be saved (model files hold no code)")
        if params.get("analyzer", "word") != "word":
            raise ValueError("a featurizer with a callable analyzer cannot be saved (model files hold no code)")
        if params.get("input", "content") != "content":
            raise ValueError(f"a featurizer reading input={params['input']!r} cannot be saved; use input='content'")
        saved = {}
        for key in _SAVED_PARAMS[name]:
            value = params[key]
            if key == "dtype":
                value = np.dtype(value).name
            elif key == "ngram_range":
                value = [int(v) for v in value]
            elif key == "stop_words" and value is not None and not isinstance(value, str):
                value = sorted(str(w) for w in value)
            saved[key] = value
        classes = self.classes_.tolist()
        if not all(isinstance(c, (str, numbers.Integral)) and not isinstance(c, bool) for c in classes):
            raise ValueError(f"class names must be str or int to be saved; got {classes!r}")
        header = {"featurizer": name, "params": saved, "classes": classes}
        json.dumps(header)  # fails here, not half way through writing, if anything is not JSON
        arrays = {}
        if name == "BagOfWords":
            terms = self.featurizer.get_feature_names_out()
            encoded = [str(t).encode("utf-8") for t in terms]
            arrays["vocab_offsets"] = np.cumsum([0] + [len(e) for e in encoded], dtype=np.int64)
            arrays["vocab_utf8"] = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        return header, arrays


def _n_features(featurizer):
    if type(featurizer).__name__ == "HashingBagOfWords":
        return int(featurizer.n_features)
    vocabulary = getattr(featurizer, "vocabulary_", None)
    if vocabulary is None:
        vocabulary = featurizer.vocabulary  # a given vocabulary: the featurizer needs no fit
    if vocabulary is None:
        raise ValueError("the BagOfWords featurizer is not fitted (it has no vocabulary_)")
    return len(vocabulary)


def from_saved(description, net, arrays, where):
    """The TextClassifier a model file describes (``description``: its header's "text" object; ``arrays``: the
    vocabulary members read from it). Raises ValueError naming ``where`` for anything inconsistent."""
    try:
        name = description["featurizer"]
        params = dict(description["params"])
        classes = list(description["classes"])
        if name not in _SAVED_PARAMS or set(params) != set(_SAVED_PARAMS[name]):
            raise ValueError(f"featurizer {name!r} with parameters {sorted(params)}")
        if "ngram_range" in params:
            params["ngram_range"] = tuple(params["ngram_range"])
        if name == "BagOfWords":
            offsets, blob = arrays["vocab_offsets"], arrays["vocab_utf8"]
            if (offsets.ndim != 1 or offsets.shape[0] != net.layer_sizes[0] + 1 or offsets[0] != 0
                    or offsets[-1] != blob.shape[0] or np.any(np.diff(offsets) < 0)):
                raise ValueError("the vocabulary's offsets do not describe its bytes")
            raw = blob.tobytes()
            terms = [raw[a:b].decode("utf-8") for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]
            params["vocabulary"] = terms
        featurizer = _featurizer_classes()[name](**params)
        return TextClassifier(featurizer, net, classes)
    except (KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{where}: invalid text model: {exc}") from None
