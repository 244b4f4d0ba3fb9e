"""Shared machinery of the differential tests: the corpus, running both tools, comparing outputs.

Environment:
  VMSTOR_IMG        the tool under test (meson passes the built vmstor-img; 'qemu-img' proves the tests)
  QCOW2_CORPUS_DIR  where the corpus is built and reused between test files (default: a directory
                    under the system temp dir, rebuilt when make_corpus.py or qemu-img changes)
"""
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
QEMU_IMG = "qemu-img"
CORPUS_SOURCES = ("make_corpus.py", "corpus_damage.py", "qcow2_layout.py")

# Hostile headers qemu-img opens but the issue (and the spec) require refused: tables past the end of
# the file or over the header, a header_length that is not a multiple of 8. Output comparisons skip
# them; test_hostile.py requires their refusal.
STRICTER_THAN_QEMU = {
    "hostile-l1-offset-past-eof.qcow2", "hostile-l1-offset-overlaps-header.qcow2",
    "hostile-refcount-offset-past-eof.qcow2", "hostile-refcount-offset-overlaps-header.qcow2",
    "hostile-snapshots-offset-past-eof.qcow2", "hostile-header-length-unaligned.qcow2",
}


def vmstor_img():
    path = os.environ.get("VMSTOR_IMG")
    if not path:
        raise RuntimeError("VMSTOR_IMG is not set")
    return shutil.which(path) or path


# --- corpus -----------------------------------------------------------------------------------
def _corpus_stamp():
    digest = hashlib.sha256()
    for name in CORPUS_SOURCES:
        with open(os.path.join(HERE, name), "rb") as f:
            digest.update(f.read())
    digest.update(subprocess.run([QEMU_IMG, "--version"], capture_output=True).stdout)
    return digest.hexdigest()


def corpus_dir():
    return os.environ.get("QCOW2_CORPUS_DIR") or os.path.join(tempfile.gettempdir(), "vmstor-qcow2-corpus")


_manifest = None


def manifest():
    """Builds the corpus once (under a lock, so parallel test files share it) and loads its manifest."""
    global _manifest
    if _manifest is not None:
        return _manifest
    directory = corpus_dir()
    os.makedirs(os.path.dirname(directory) or ".", exist_ok=True)
    stamp = _corpus_stamp()
    with open(directory.rstrip("/") + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp_file = os.path.join(directory, "stamp")
        current = open(stamp_file).read() if os.path.exists(stamp_file) else None
        if current != stamp:
            subprocess.run([sys.executable, os.path.join(HERE, "make_corpus.py"), directory],
                           check=True, stdout=subprocess.DEVNULL)
            with open(stamp_file, "w") as f:
                f.write(stamp)
    with open(os.path.join(directory, "manifest.json")) as f:
        _manifest = json.load(f)
    return _manifest


def images(kind=None, fmt=None, where=None):
    out = []
    for image in manifest()["images"]:
        if kind and image["kind"] != kind:
            continue
        if fmt and image["format"] != fmt:
            continue
        if where and not where(image):
            continue
        out.append(image)
    return out


def image_path(image):
    return os.path.join(corpus_dir(), image["file"])


# --- running the tools ------------------------------------------------------------------------
def run(args, cwd=None, timeout=120):
    return subprocess.run(args, cwd=cwd or corpus_dir(), capture_output=True, timeout=timeout)


def qemu(*args, **kw):
    return run([QEMU_IMG, *args], **kw)


def vmstor(*args, **kw):
    return run([vmstor_img(), *args], **kw)


def describe(result):
    err = result.stderr.decode(errors="replace").strip()
    return f"exit {result.returncode}" + (f", stderr: {err[:400]}" if err else "")


def assert_no_signal(case, result, what):
    case.assertGreaterEqual(result.returncode, 0, f"{what}: killed by signal {-result.returncode} ({describe(result)})")


def assert_ok(case, result, what):
    assert_no_signal(case, result, what)
    case.assertEqual(result.returncode, 0, f"{what} failed: {describe(result)}")


def assert_one_line_error(case, result, what):
    lines = [line for line in result.stderr.decode(errors="replace").splitlines() if line.strip()]
    case.assertEqual(len(lines), 1, f"{what}: expected a one-line error on stderr, got {lines!r}")


def assert_same_output(case, args, what):
    """Runs both tools with the same arguments: the same exit code and the same stdout, byte for byte."""
    expected, actual = qemu(*args), vmstor(*args)
    assert_no_signal(case, actual, what)
    case.assertEqual(actual.returncode, expected.returncode,
                     f"{what}: {describe(actual)}; qemu-img: {describe(expected)}")
    case.assertEqual(actual.stdout.decode(errors="replace"), expected.stdout.decode(errors="replace"),
                     f"{what}: output differs from qemu-img's")


def load_json(case, result, what):
    try:
        return json.loads(result.stdout)
    except ValueError as e:
        case.fail(f"{what}: stdout is not JSON ({e}): {result.stdout[:300]!r}")


# --- comparing --------------------------------------------------------------------------------
def json_diff(expected, actual, path="", shared_only=False):
    """Lines describing how `actual` differs from `expected`; with shared_only, keys missing from
    either side are ignored (only fields both report are compared)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        lines = []
        for key in sorted(set(expected) | set(actual)):
            sub = f"{path}.{key}" if path else key
            if key not in actual:
                if not shared_only:
                    lines.append(f"  {sub}: missing (qemu-img: {expected[key]!r})")
            elif key not in expected:
                if not shared_only:
                    lines.append(f"  {sub}: unexpected (vmstor-img: {actual[key]!r})")
            else:
                lines += json_diff(expected[key], actual[key], sub, shared_only)
        return lines
    if isinstance(expected, list) and isinstance(actual, list):
        lines = []
        if len(expected) != len(actual):
            lines.append(f"  {path}: {len(actual)} entries, qemu-img has {len(expected)}")
        for index, (e, a) in enumerate(zip(expected, actual)):
            lines += json_diff(e, a, f"{path}[{index}]", shared_only)
        return lines
    if expected != actual:
        return [f"  {path or '(top)'}: vmstor-img {actual!r} != qemu-img {expected!r}"]
    return []


def missing_fields(expected, actual, required):
    """Dotted paths from `required` that qemu-img reports and vmstor-img does not."""
    out = []
    for dotted in required:
        e, a = expected, actual
        for key in dotted.split("."):
            if not isinstance(e, dict) or key not in e:
                break
            if not isinstance(a, dict) or key not in a:
                out.append(dotted)
                break
            e, a = e[key], a[key]
    return out


def _data_extents(path):
    """(start, end) ranges of a file that may hold data, from SEEK_DATA/SEEK_HOLE."""
    extents = []
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        offset = 0
        while offset < size:
            try:
                start = os.lseek(f.fileno(), offset, os.SEEK_DATA)
            except OSError:
                break
            end = os.lseek(f.fileno(), start, os.SEEK_HOLE)
            extents.append((start, end))
            offset = end
    return extents


def first_difference(path_a, path_b):
    """None if both files have the same size and bytes, else a description. Holes read as zeroes,
    so sparse files of terabytes compare in the time their data takes."""
    size_a, size_b = os.path.getsize(path_a), os.path.getsize(path_b)
    if size_a != size_b:
        return f"sizes differ: {size_a} != {size_b}"
    ranges = sorted(_data_extents(path_a) + _data_extents(path_b))
    chunk = 4 << 20
    with open(path_a, "rb") as a, open(path_b, "rb") as b:
        covered = 0
        for start, end in ranges:
            start = max(start, covered)
            for offset in range(start, end, chunk):
                length = min(chunk, end - offset)
                a.seek(offset)
                b.seek(offset)
                block_a, block_b = a.read(length), b.read(length)
                if block_a != block_b:
                    at = next(i for i in range(len(block_a)) if block_a[i : i + 1] != block_b[i : i + 1])
                    return f"first difference at byte {offset + at}"
            covered = max(covered, end)
    return None


# --- test generation --------------------------------------------------------------------------
def case_name(text):
    # "+1M" and "1M" are different cases (grow by, resize to): '+' must not vanish with the punctuation.
    return re.sub(r"[^0-9a-zA-Z]+", "_", text.replace("+", " plus ")).strip("_")


# Per prefix of add_cases: how many cases were made from the manifest, and how many of them ran.
_generated = {}
_ran = {}


def add_cases(cls, prefix, cases, method):
    """Adds one test method per case so that every image gets its own line in the results. A selection
    of no case is an error: a corpus that lost its images must not pass by running nothing."""
    cases = list(cases)
    if not cases:
        raise AssertionError(f"no case for {cls.__name__}.{prefix}: the corpus manifest "
                             f"({os.path.join(corpus_dir(), 'manifest.json')}) has no image it selects")
    _generated[prefix] = _generated.get(prefix, 0) + len(cases)
    _ran.setdefault(prefix, 0)
    for case in cases:
        label = case["name"] if isinstance(case, dict) else str(case)

        def test(self, case=case):
            _ran[prefix] += 1
            method(self, case)

        test.__name__ = f"test_{prefix}__{case_name(label)}"
        setattr(cls, test.__name__, test)


class ScratchCase(unittest.TestCase):
    """A test case with a private scratch directory (removed afterwards)."""

    def setUp(self):
        self.scratch = tempfile.mkdtemp(prefix="vmstor-q2-", dir=os.environ.get("QCOW2_SCRATCH_DIR"))
        self.addCleanup(shutil.rmtree, self.scratch, True)

    def scratch_path(self, name):
        return os.path.join(self.scratch, name)

    def copy_image(self, image):
        destination = self.scratch_path(image["file"])
        shutil.copyfile(image_path(image), destination)
        return destination


def count_problems():
    """How the cases that ran fall short of those made from the manifest, one line per prefix."""
    return [f"{prefix}: {_ran[prefix]} of the {made} cases made from the manifest ran"
            for prefix, made in sorted(_generated.items()) if _ran[prefix] != made]


def main():
    if not os.environ.get("VMSTOR_IMG"):
        print("VMSTOR_IMG is not set: point it at vmstor-img (or at qemu-img to check the tests)", file=sys.stderr)
        sys.exit(1)
    program = unittest.main(verbosity=2, exit=False)
    success = program.result.wasSuccessful()
    if len(sys.argv) == 1:  # the whole file ran (no -k or test name): every generated case must have run
        problems = count_problems()
        print(f"{sum(_ran.values())} of {sum(_generated.values())} cases made from the manifest ran"
              + "".join(f"\n  {line}" for line in problems), file=sys.stderr)
        success = success and not problems
    sys.exit(0 if success else 1)
