"""Text in, sentiment out: TextClassifier, its model file, `pyfastnn train --text` and `pyfastnn predict`."""

import io
import re
import sys

import numpy as np
import pytest

import pyfastnn as pf
from pyfastnn.cli import main
from pyfastnn.text import BagOfWords, HashingBagOfWords, TextClassifier

pytest.importorskip("scipy.sparse")

DOCS = ["a lovely film", "the best food", "great value, works well", "awful and boring", "the worst service",
        "poor battery, terrible", "lovely staff", "boring plot"]
LABELS = ["pos", "pos", "pos", "neg", "neg", "neg", "pos", "neg"]


def _trained(featurizer, seed=0):
    x = featurizer.fit_transform(DOCS)
    classes, y = np.unique(LABELS, return_inverse=True)
    net = pf.MLP([x.shape[1], 8, 2], seed=seed)
    net.fit(x, y, optimizer=pf.Adam(0.05), epochs=30, batch_size=4, progress=False, seed=0)
    return TextClassifier(featurizer, net, classes)


@pytest.mark.parametrize("featurizer", [BagOfWords(ngram_range=(1, 2), dtype=np.float32),
                                        HashingBagOfWords(n_features=512, dtype=np.float32)],
                         ids=["bag", "hashing"])
def test_text_classifier_saves_loads_and_predicts_on_raw_strings(tmp_path, backend_name, featurizer):
    clf = _trained(featurizer)
    assert list(clf.predict(["what a lovely film", "boring and awful"])) == ["pos", "neg"]
    proba = clf.predict_proba(DOCS)
    assert proba.shape == (8, 2) and np.allclose(proba.sum(axis=1), 1)
    clf.save(tmp_path / "m.npz")
    back = pf.load(tmp_path / "m.npz")
    assert isinstance(back, TextClassifier) and type(back.featurizer) is type(featurizer)
    assert list(back.classes_) == ["neg", "pos"]
    new = ["lovely lovely food", "terrible", "", "words it never saw"]
    np.testing.assert_array_equal(back.predict_proba(new), clf.predict_proba(new))
    np.testing.assert_array_equal(back.transform(new).toarray(), clf.transform(new).toarray())


def test_a_plain_network_is_still_written_as_format_1(tmp_path):
    net = pf.MLP([4, 3, 2], seed=0)
    net.save(tmp_path / "n.npz")
    with np.load(tmp_path / "n.npz") as f:
        assert b'"format_version": 1' in f["header"].tobytes()
    assert isinstance(pf.load(tmp_path / "n.npz"), pf.MLP)


def test_a_text_model_with_a_changed_vocabulary_fails_its_checksum(tmp_path):
    clf = _trained(BagOfWords(dtype=np.float32))
    clf.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as f:
        arrays = {k: f[k] for k in f.files}
    blob = arrays["vocab_utf8"].copy()
    blob[0] = ord("z") if blob[0] != ord("z") else ord("y")
    arrays["vocab_utf8"] = blob
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match="checksum"):
        pf.load(tmp_path / "bad.npz")


def test_featurizers_holding_code_are_not_saved(tmp_path):
    clf = _trained(BagOfWords(tokenizer=str.split, token_pattern=None, lowercase=False, dtype=np.float32))
    with pytest.raises(ValueError, match="callable tokenizer"):
        clf.save(tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


def test_text_classifier_checks_its_parts():
    clf = _trained(BagOfWords(dtype=np.float32))
    with pytest.raises(ValueError, match="features but the network takes"):
        TextClassifier(BagOfWords().fit(["one two"]), clf.net, ["neg", "pos"])
    with pytest.raises(ValueError, match="class names"):
        TextClassifier(clf.featurizer, clf.net, ["a", "b", "c"])
    with pytest.raises(TypeError, match="featurizer"):
        TextClassifier(object(), clf.net, ["a", "b"])
    with pytest.raises(TypeError, match="single string"):
        clf.predict("one text, not a list")


def _run(argv, stdin=None, monkeypatch=None):
    out, err = io.StringIO(), io.StringIO()
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        code = main(argv)
    finally:
        sys.stdout, sys.stderr = old
    return code, out.getvalue(), err.getvalue()


def test_train_text_on_the_bundled_sentences_then_predict(tmp_path, monkeypatch, backend_name):
    """The issue's done-when: `pyfastnn train --text` prints a test accuracy >= 0.80 on the bundled sentences,
    and `pyfastnn predict` works on the saved model, from arguments and from standard input."""
    model = tmp_path / "sentiment.npz"
    code, out, err = _run(["train", "--text", "--quiet", "--save", str(model), "--backend", backend_name])
    assert code == 0, err
    accuracy = float(re.search(r"test accuracy: ([0-9.]+)", out).group(1))
    assert accuracy >= 0.80, out
    assert "3000 texts, 2 classes" in out and "train 2250 / test 750" in out
    clf = pf.load(model)
    assert isinstance(clf, TextClassifier) and list(clf.classes_) == ["negative", "positive"]
    code, out, err = _run(["predict", str(model), "What a lovely film, I loved it", "The food was awful"])
    assert code == 0, err
    lines = [line.split("\t") for line in out.splitlines()]
    assert [(c, t) for c, _, t in lines] == [("positive", "What a lovely film, I loved it"),
                                             ("negative", "The food was awful")]
    assert all(0.5 <= float(p) <= 1 for _, p, _ in lines)
    code, out, err = _run(["predict", str(model), "-"], stdin="great phone\n\nterrible battery life\n",
                          monkeypatch=monkeypatch)
    assert code == 0, err
    assert [line.split("\t")[0] for line in out.splitlines()] == ["positive", clf.predict([""])[0], "negative"]


def test_train_text_on_a_users_file(tmp_path):
    rows = [("I love it", "happy"), ("I hate it", "sad"), ("so happy with this", "happy"),
            ("sad and disappointed", "sad")] * 10
    path = tmp_path / "mine.tsv"
    path.write_text("text\tmood\n" + "".join(f"{t}\t{m}\n" for t, m in rows), encoding="utf-8")
    code, out, err = _run(["train", "--text", "--data", str(path), "--label-column", "mood", "--text-column", "text",
                           "--quiet", "--save", str(tmp_path / "m.npz"), "--epochs", "30"])
    assert code == 0, err
    assert list(pf.load(tmp_path / "m.npz").predict(["love", "sad"])) == ["happy", "sad"]


def test_predict_refuses_a_numeric_model(tmp_path):
    pf.MLP([4, 3, 2], seed=0).save(tmp_path / "n.npz")
    code, out, err = _run(["predict", str(tmp_path / "n.npz"), "some text"])
    assert code == 1 and "not a text model" in err
