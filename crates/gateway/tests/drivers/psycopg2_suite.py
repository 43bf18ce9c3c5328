"""Runs psycopg2's own test suite (the `tests/` folder of its PyPI source distribution)
through the gateway and compares the outcome with the checked-in list of tests refused by
design (`psycopg2_refused.txt`: one `test id  # reason` per line).

Usage: psycopg2_suite.py SUITE_DIR REFUSED_FILE [REPORT_FILE]
(the connection comes from PSYCOPG2_TESTDB* and PGOPTIONS, set by the caller).

Exits 0 and prints "ok" when every test that is not on the list passes (or is skipped by the
suite itself) and every test on the list still fails; otherwise names each difference."""
import io
import os
import sys
import unittest

suite_dir, refused_file = sys.argv[1:3]
report_file = sys.argv[3] if len(sys.argv) > 3 else None
sys.path.insert(0, suite_dir)

refused = {}
with open(refused_file) as f:
    for line in f:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        test, _, reason = line.partition("#")
        refused[test.strip()] = reason.strip()


class Collect(unittest.TextTestResult):
    """Records every test's outcome by id."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.outcomes = {}

    def stopTest(self, test):
        # unittest skips tearDown when setUp fails, and a failed test's traceback keeps its
        # connections alive (each holding a pooled backend in its open transaction): close
        # them, as the suite's own tearDown would.
        for conn in getattr(test, "_conns", []):
            try:
                conn.close()
            except Exception:
                pass
        super().stopTest(test)

    def addSuccess(self, test):
        super().addSuccess(test)
        self.outcomes[test.id()] = "pass"

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.outcomes[test.id()] = "fail"

    def addError(self, test, err):
        super().addError(test, err)
        self.outcomes.setdefault(test.id(), "fail")

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.outcomes[test.id()] = "skip"

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self.outcomes[test.id()] = "pass"

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.outcomes[test.id()] = "fail"


import tests  # noqa: E402  (the suite's package, from SUITE_DIR)

log = io.StringIO()
runner = unittest.TextTestRunner(stream=log, verbosity=2, resultclass=Collect)
only = os.environ.get("PSYCOPG2_SUITE_ONLY")
if only:
    suite = unittest.defaultTestLoader.loadTestsFromName(only)
else:
    suite = tests.test_suite()
result = runner.run(suite)
if report_file:
    with open(report_file + ".log", "w") as f:
        f.write(log.getvalue())

# Per failed test: the last line of its traceback (the exception), for the report.
errors = {}
for test, text in result.failures + result.errors:
    last = [line for line in text.strip().splitlines() if line.strip()]
    errors[test.id()] = last[-1] if last else ""

if report_file:
    with open(report_file, "w") as f:
        for test in sorted(result.outcomes):
            f.write(f"{result.outcomes[test]}\t{test}\t{errors.get(test, '')}\n")

counts = {}
for outcome in result.outcomes.values():
    counts[outcome] = counts.get(outcome, 0) + 1
unexpected = sorted(
    t for t, o in result.outcomes.items() if o == "fail" and t not in refused
)
stale = sorted(t for t, o in result.outcomes.items() if o == "pass" and t in refused)
missing = sorted(t for t in refused if t not in result.outcomes)
print(
    f"psycopg2 suite: {len(result.outcomes)} tests, {counts.get('pass', 0)} passed, "
    f"{counts.get('fail', 0)} failed ({len(refused)} refused by design), "
    f"{counts.get('skip', 0)} skipped by the suite"
)
for t in unexpected:
    print(f"FAILED (not on the refused list): {t}: {errors.get(t, '')}")
for t in stale:
    print(f"PASSES but is on the refused list (take it off): {t}")
for t in missing:
    print(f"on the refused list but not in the suite: {t}")
if unexpected or stale or missing:
    sys.exit(1)
print("ok")
