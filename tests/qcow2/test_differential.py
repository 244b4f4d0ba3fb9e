#!/usr/bin/python3
"""The whole differential suite in one run: every test_*.py of this directory (info, map, convert,
check, repair, hostile headers, create, compress, resize, compare, measure).

usage: VMSTOR_IMG=path/to/vmstor-img test_differential.py [unittest options, e.g. -k info]
The meson build registers each file as its own test instead (tests/qcow2/meson.build).
"""
import sys
import unittest

import difftest as dt

MODULES = ["test_info", "test_map", "test_convert_raw", "test_check", "test_repair", "test_hostile",
           "test_create", "test_convert", "test_compress", "test_resize", "test_compare", "test_measure"]


def load_tests(loader, tests, pattern):
    suite = unittest.TestSuite()
    for name in MODULES:
        suite.addTests(loader.loadTestsFromName(name))
    return suite


if __name__ == "__main__":
    sys.path.insert(0, dt.HERE)
    dt.main()
