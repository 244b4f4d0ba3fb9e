#!/usr/bin/python3
"""Runs the qcow2 libFuzzer target with the project's limits.

usage: run_fuzzer.py replay FUZZER CORPUS_DIR WORK_DIR
       run_fuzzer.py fuzz FUZZER CORPUS_DIR WORK_DIR [--seconds N]

replay runs every seed of CORPUS_DIR once; fuzz mutates a scratch copy of it for N seconds (60 by
default). Either fails on a crash, a sanitizer report, a leak, an input slower than TIMEOUT_S, an
allocation above MALLOC_LIMIT_MB or a resident size above RSS_LIMIT_MB. The failing input is kept in
WORK_DIR/artifacts/ and named in the output.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

# Fuzzed images are at most MAX_LEN bytes, so the engine's table limits (32 MiB L1, 64 MiB snapshot
# table...) never apply: one allocation above MALLOC_LIMIT_MB means a size taken from the image without
# checking it against the file.
MAX_LEN = 128 * 1024
MALLOC_LIMIT_MB = 16
RSS_LIMIT_MB = 1024
TIMEOUT_S = 10


def limits(artifacts):
    return [f"-max_len={MAX_LEN}", f"-malloc_limit_mb={MALLOC_LIMIT_MB}", f"-rss_limit_mb={RSS_LIMIT_MB}",
            f"-timeout={TIMEOUT_S}", "-detect_leaks=1", f"-artifact_prefix={artifacts}/"]


def environment():
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    return env


def run(command, shown=None):
    print("+ " + " ".join(shown or command), flush=True)
    result = subprocess.run(command, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace")
    return result.returncode, result.stdout


def report_failure(output, artifacts, before):
    print(output[-20000:])
    for name in sorted(set(os.listdir(artifacts)) - before):
        print(f"fuzz: failing input kept as {os.path.join(artifacts, name)}")
    return 1


def seeds(corpus):
    files = sorted(os.path.join(corpus, name) for name in os.listdir(corpus))
    return [path for path in files if os.path.isfile(path)]


def replay(args, artifacts, before):
    files = seeds(args.corpus)
    if not files:
        print(f"fuzz: no seeds in {args.corpus}")
        return 1
    rc, output = run([args.fuzzer, *limits(artifacts), *files],
                     [args.fuzzer, *limits(artifacts), f"<the {len(files)} files of {args.corpus}>"])
    executed = len(re.findall(r"^Executed .* in \d+ ms$", output, re.MULTILINE))
    if rc != 0 or executed != len(files):
        print(f"fuzz: replay failed (exit {rc}, {executed} of {len(files)} seeds executed)")
        return report_failure(output, artifacts, before)
    print(f"fuzz: {executed} seeds replayed, each refused cleanly or read through; no crash, leak or "
          f"allocation above {MALLOC_LIMIT_MB} MiB")
    return 0


def fuzz(args, artifacts, before):
    start = len(seeds(args.corpus))
    with tempfile.TemporaryDirectory(prefix="corpus-", dir=args.work) as scratch:
        for path in seeds(args.corpus):
            shutil.copy(path, scratch)
        rc, output = run([args.fuzzer, *limits(artifacts), f"-max_total_time={args.seconds}",
                          "-print_final_stats=1", scratch])
        grown = len(os.listdir(scratch))
    done = re.search(r"^Done (\d+) runs in (\d+) second", output, re.MULTILINE)
    if rc != 0 or not done:
        print(f"fuzz: fuzzing failed (exit {rc})")
        return report_failure(output, artifacts, before)
    runs, seconds = int(done.group(1)), max(1, int(done.group(2)))
    coverage = re.findall(r"cov: (\d+) ft: (\d+)", output)
    edges = f", {coverage[-1][0]} edges covered" if coverage else ""
    print(f"fuzz: {runs} executions in {seconds} s ({runs // seconds}/s), corpus {start} -> {grown} inputs"
          f"{edges}; no crash, leak, timeout ({TIMEOUT_S} s) or allocation above {MALLOC_LIMIT_MB} MiB "
          f"(RSS limit {RSS_LIMIT_MB} MiB)")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["replay", "fuzz"])
    parser.add_argument("fuzzer")
    parser.add_argument("corpus")
    parser.add_argument("work")
    parser.add_argument("--seconds", type=int, default=60)
    args = parser.parse_args()
    artifacts = os.path.join(args.work, "artifacts")
    os.makedirs(artifacts, exist_ok=True)
    before = set(os.listdir(artifacts))  # inputs kept by earlier runs
    return (replay if args.mode == "replay" else fuzz)(args, artifacts, before)


if __name__ == "__main__":
    sys.exit(main())
