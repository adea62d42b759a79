"""What the property-based fuzzing suites (tests/test_fuzz*.py) share: the hypothesis profiles and the outcome
rule with its counter.

Profiles: "ci" (the default: few examples, derandomized so a CI run is reproducible) and "deep" (many
examples), chosen by the environment variable HYPOTHESIS_PROFILE=deep. They are applied by decorating each
test with ``FUZZ``, not loaded globally, so the other hypothesis tests of the suite keep their own settings.

The rule every fuzzed call obeys: it returns (and the test then checks the answer against a reference) or it
raises one of the clear error types it documents; any other exception, a crash or a hang fails the test.
``OUTCOMES`` counts the calls by outcome; tests/conftest.py prints the counts at the end of a run.
"""

import collections
import os

from hypothesis import HealthCheck, settings

_COMMON = {
    "deadline": None,
    "database": None,
    # backend_name and tmp_path are set up once per test, not per example: that is what these tests want.
    "suppress_health_check": [
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
}
settings.register_profile("ci", max_examples=50, derandomize=True, **_COMMON)
settings.register_profile("deep", max_examples=1000, **_COMMON)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
FUZZ = settings.get_profile(PROFILE if PROFILE in ("ci", "deep") else "ci")

# The errors a public call may answer bad input with (exact types: a subclass such as UnicodeDecodeError or
# zipfile's BadZipFile leaking out is not the clear error the API promises).
CLEAR = (ValueError, TypeError, MemoryError, FloatingPointError)

OUTCOMES = collections.Counter()


def outcome(call, allowed=CLEAR, what=""):
    """Run ``call()``; return ("ok", result) or (exception type, exception) for an error of a type in
    ``allowed`` with a message. Anything else propagates and fails the test. Each outcome is counted under
    ``what``."""
    try:
        result = call()
    except allowed as exc:
        kind = type(exc)
        if kind not in allowed:
            raise AssertionError(
                f"{kind.__module__}.{kind.__name__} raised where one of "
                f"{[t.__name__ for t in allowed]} is expected: {exc}"
            ) from exc
        assert str(exc).strip(), f"{kind.__name__} without a message"
        OUTCOMES[(what, kind.__name__)] += 1
        if os.environ.get("FUZZ_SHOW_ERRORS"):  # to see what the generated examples run into (with -s)
            print(f"{what}: {kind.__name__}: {str(exc)[:150]}")
        return kind, exc
    OUTCOMES[(what, "correct answer")] += 1
    return "ok", result
