"""Text to sparse bag-of-words features, identical to scikit-learn's vectorizers and many times faster.

:class:`BagOfWords` gives ``CountVectorizer``'s output, :class:`HashingBagOfWords` gives
``HashingVectorizer(alternate_sign=False, norm=None)``'s: same shape, dtype, feature order and values, as a
canonical ``scipy.sparse.csr_matrix``. The default word analyzer runs in compiled Cython kernels when they are
built (``kernel_info()`` says whether), with a pure-Python fallback giving the same results.
:class:`TextClassifier` keeps a featurizer, a network and the class names together: it predicts on raw strings
and saves to one model file (``pyfastnn train --text`` writes one; ``pyfastnn.load`` reads it).
"""

from ._model import TextClassifier
from .vectorizers import BagOfWords, HashingBagOfWords, kernel_info

__all__ = ["BagOfWords", "HashingBagOfWords", "TextClassifier", "kernel_info"]
