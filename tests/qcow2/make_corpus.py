#!/usr/bin/python3
"""Builds the qcow2 differential corpus with QEMU's own qemu-img and qemu-io.

usage: make_corpus.py DIR

Writes every image into DIR plus DIR/manifest.json, which lists each image, its features and, for the
damaged and hostile ones, qemu-img's own verdict (see corpus_damage.py). Deterministic: the same
bytes every run (snapshot dates are set to fixed values). Small: MiB-sized files, some with large
sparse virtual sizes.
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus_damage  # noqa: E402
import qcow2_layout  # noqa: E402

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


def run(*cmd, cwd):
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def qemu_io(image, fmt, commands, cwd):
    args = ["qemu-io", "-f", fmt]
    for command in commands:
        args += ["-c", command]
    run(*args, image, cwd=cwd)


def mixed_raw(path, size, seed):
    """A raw file with random, text-like and zero regions (compressible and not), sparse zeroes."""
    rng = random.Random(seed)
    words = [b"qcow2", b"cluster", b"refcount", b"vmstor", b"snapshot", b"backing", b"\n"]
    with open(path, "wb") as f:
        f.truncate(size)
        chunk = 64 * KiB
        for index in range(size // chunk):
            kind = index % 4
            f.seek(index * chunk)
            if kind == 0:
                f.write(rng.randbytes(chunk))
            elif kind == 1:
                text = b" ".join(rng.choice(words) for _ in range(chunk // 4))
                f.write(text[:chunk])
            elif kind == 2:
                f.write(bytes([index % 251]) * (chunk // 2))
            # kind 3 stays a hole


def edge_compressible_raw(path, seed):
    """16 clusters of 64 KiB, each random but for a zero run of 100 to 1,600 bytes: they compress to
    just under a cluster, the band where only a writer that allows cluster - 1 bytes, as QEMU's does,
    stores them compressed. The last MiB is text in 512-byte clusters' worth of variety."""
    rng = random.Random(seed)
    with open(path, "wb") as f:
        for index in range(16):
            run_length = 100 * (index + 1)
            at = rng.randrange(64 * KiB - run_length)
            data = bytearray(rng.randbytes(64 * KiB))
            data[at : at + run_length] = bytes(run_length)
            f.write(data)
        words = [b"qcow2", b"cluster", b"edge", b"\n"]
        text = b" ".join(rng.choice(words) for _ in range(MiB // 4))
        f.write(text[:MiB])


class Corpus:
    def __init__(self, directory):
        self.dir = directory
        self.images = []

    def add(self, name, fmt, features, **extra):
        entry = {"name": name, "file": name, "format": fmt, "kind": "good", "features": features}
        entry.update(extra)
        self.images.append(entry)
        return name

    def create(self, name, size, options=None, fmt="qcow2", backing=None, backing_fmt=None):
        args = ["qemu-img", "create", "-q", "-f", fmt]
        if options:
            args += ["-o", ",".join(f"{k}={v}" for k, v in options.items())]
        if backing:
            args += ["-b", backing, "-F", backing_fmt]
        args += [name, str(size)]
        run(*args, cwd=self.dir)
        return name

    def write(self, name, commands, fmt="qcow2"):
        qemu_io(name, fmt, commands, cwd=self.dir)

    def path(self, name):
        return os.path.join(self.dir, name)


# Guest data shared by most images: patterns across cluster boundaries, zero writes, a discard.
def standard_writes(cluster, size):
    span = min(cluster, 64 * KiB)
    end = size - 3 * KiB
    return [
        "write -P 0x11 0 4k",
        f"write -P 0x22 {cluster - 512} 1k",
        f"write -P 0x33 {3 * cluster - span} {2 * span}",
        f"write -z {5 * cluster} {cluster}",
        f"write -P 0x44 {8 * cluster} {2 * cluster}",
        f"discard {9 * cluster} {cluster}",
        f"write -z {10 * cluster + 512} 1k",
        f"write -P 0x55 {end} 3k",
    ]


def build_create_options(c):
    for compat in ("0.10", "1.1"):
        for cluster in (512, 4 * KiB, 64 * KiB, 2 * MiB):
            size = max(16 * cluster, 4 * MiB)
            name = c.create(f"compat{compat}-cl{cluster}.qcow2", size,
                            {"compat": compat, "cluster_size": cluster})
            c.write(name, standard_writes(cluster, size))
            c.add(name, "qcow2", {"compat": compat, "cluster_size": cluster, "data": "patterns"})
    for cluster in (1 * KiB, 16 * KiB, 256 * KiB, 1 * MiB):
        size = 16 * cluster + 7 * 512  # not a multiple of the cluster size
        name = c.create(f"cl{cluster}-odd.qcow2", size, {"cluster_size": cluster})
        c.write(name, standard_writes(cluster, size))
        c.add(name, "qcow2", {"cluster_size": cluster, "odd_size": size, "data": "patterns"})
    for bits in (1, 2, 4, 8, 16, 32, 64):
        # 4 KiB clusters so that several refcount blocks exist at narrow widths.
        name = c.create(f"refcount{bits}.qcow2", 8 * MiB, {"refcount_bits": bits, "cluster_size": 4 * KiB})
        c.write(name, standard_writes(4 * KiB, 8 * MiB) + ["write -P 0x66 4M 2M"])
        c.add(name, "qcow2", {"refcount_bits": bits, "cluster_size": 4 * KiB, "data": "patterns"})
    name = c.create("lazy-refcounts.qcow2", 4 * MiB, {"lazy_refcounts": "on"})
    c.write(name, standard_writes(64 * KiB, 4 * MiB))
    c.add(name, "qcow2", {"lazy_refcounts": True, "data": "patterns"})
    for prealloc in ("off", "metadata", "falloc", "full"):
        name = c.create(f"prealloc-{prealloc}.qcow2", 3 * MiB + 512, {"preallocation": prealloc})
        c.write(name, ["write -P 0x77 64k 128k", "write -z 1M 64k"])
        c.add(name, "qcow2", {"preallocation": prealloc, "odd_size": 3 * MiB + 512, "data": "patterns"})
    for prealloc in ("off", "falloc", "full"):
        name = c.create(f"raw-prealloc-{prealloc}.raw", 2 * MiB + 4 * KiB, {"preallocation": prealloc}, fmt="raw")
        c.write(name, ["write -P 0x78 4k 8k"], fmt="raw")
        c.add(name, "raw", {"preallocation": prealloc, "data": "patterns"})
    name = c.create("empty.qcow2", 1 * MiB)
    c.add(name, "qcow2", {"data": "none"})
    name = c.create("sparse-1t.qcow2", 1024 * GiB)
    c.write(name, ["write -P 0x12 0 64k", "write -P 0x13 512G 1M", "write -z 700G 4M", "write -P 0x14 1023G 64k"])
    c.add(name, "qcow2", {"virtual_size": "1 TiB", "data": "patterns far apart"})
    name = c.create("sparse-cl512-4g.qcow2", 4 * GiB, {"cluster_size": 512})
    c.write(name, ["write -P 0x15 0 4k", "write -P 0x16 3G 8k"])
    c.add(name, "qcow2", {"cluster_size": 512, "virtual_size": "4 GiB", "data": "patterns far apart"})


def build_extended_l2(c):
    for cluster in (16 * KiB, 64 * KiB, 2 * MiB):
        sub = cluster // 32
        name = c.create(f"extl2-cl{cluster}.qcow2", 8 * MiB, {"extended_l2": "on", "cluster_size": cluster})
        c.write(name, [
            f"write -P 0x21 0 {sub}",                      # first subcluster only
            f"write -P 0x22 {3 * sub + 100} {2 * sub}",    # partial subclusters
            f"write -z {10 * sub} {3 * sub}",              # zero subclusters
            f"write -P 0x23 {cluster} {cluster}",          # a whole cluster
            f"write -z {2 * cluster} {cluster}",           # a whole zero cluster
            f"discard {cluster + 4 * sub} {4 * sub}",
        ])
        c.add(name, "qcow2", {"extended_l2": True, "cluster_size": cluster, "data": "partial subclusters"})
    base = c.create("extl2-base.raw", 1 * MiB, fmt="raw")
    c.write(base, ["write -P 0xb0 0 1M"], fmt="raw")
    name = c.create("extl2-over-raw.qcow2", 2 * MiB, {"extended_l2": "on", "cluster_size": 64 * KiB},
                    backing=base, backing_fmt="raw")
    c.write(name, ["write -P 0xb1 4k 2k", "write -z 66k 4k", "write -P 0xb2 1020k 8k"])
    c.add(base, "raw", {"data": "patterns", "role": "backing"})
    c.add(name, "qcow2", {"extended_l2": True, "backing": "raw", "data": "subclusters over backing"})


def build_compressed(c):
    source = "mixed-source.raw"
    mixed_raw(c.path(source), 4 * MiB, seed=2)
    c.add(source, "raw", {"data": "mixed random/text/zero"})
    for ctype in ("zlib", "zstd"):
        for cluster in (4 * KiB, 64 * KiB, 2 * MiB):
            name = f"compressed-{ctype}-cl{cluster}.qcow2"
            run("qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", "-o",
                f"compression_type={ctype},cluster_size={cluster}", source, name, cwd=c.dir)
            c.add(name, "qcow2", {"compression_type": ctype, "cluster_size": cluster, "data": "compressed by convert -c"})
        name = f"compressed-{ctype}-rewritten.qcow2"
        run("qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", "-o", f"compression_type={ctype}",
            source, name, cwd=c.dir)
        c.write(name, ["write -P 0xc1 0 96k", "write -z 1M 64k", "discard 2M 128k"])
        c.add(name, "qcow2", {"compression_type": ctype, "data": "compressed then partly overwritten"})
    edge = "compress-edge.raw"
    edge_compressible_raw(c.path(edge), seed=3)
    c.add(edge, "raw", {"data": "clusters that compress to just under their size"})
    for ctype, cluster in (("zlib", 64 * KiB), ("zstd", 64 * KiB), ("zlib", 512)):
        name = f"compressed-edge-{ctype}-cl{cluster}.qcow2"
        run("qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", "-o",
            f"compression_type={ctype},cluster_size={cluster}", edge, name, cwd=c.dir)
        c.add(name, "qcow2", {"compression_type": ctype, "cluster_size": cluster,
                              "data": "clusters compressed to just under their size"})
    name = "compressed-v2.qcow2"
    run("qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "compat=0.10", source, name, cwd=c.dir)
    c.add(name, "qcow2", {"compat": "0.10", "compression_type": "zlib", "data": "compressed by convert -c"})


def build_backing_chains(c):
    base = c.create("base.raw", 4 * MiB, fmt="raw")
    c.write(base, ["write -P 0xa0 0 4M", "write -z 1M 64k"], fmt="raw")
    c.add(base, "raw", {"data": "patterns", "role": "backing"})
    over_raw = c.create("over-raw.qcow2", 4 * MiB, backing=base, backing_fmt="raw")
    c.write(over_raw, ["write -P 0xa1 64k 64k", "write -z 128k 64k", "write -P 0xa2 1000k 100k"])
    c.add(over_raw, "qcow2", {"backing": "raw", "chain_length": 2})
    qbase = c.create("base.qcow2", 4 * MiB)
    c.write(qbase, ["write -P 0xa3 0 2M", "write -P 0xa4 3M 512k"])
    c.add(qbase, "qcow2", {"role": "backing"})
    over_q = c.create("over-qcow2.qcow2", 4 * MiB, backing=qbase, backing_fmt="qcow2")
    c.write(over_q, ["write -P 0xa5 512k 64k", "write -z 0 64k", "discard 3M 64k"])
    c.add(over_q, "qcow2", {"backing": "qcow2", "chain_length": 2})
    top = c.create("chain3-top.qcow2", 6 * MiB, backing=over_raw, backing_fmt="qcow2")
    c.write(top, ["write -P 0xa6 96k 8k", "write -z 1000k 4k", "write -P 0xa7 5M 64k"])
    c.add(top, "qcow2", {"backing": "qcow2 over raw", "chain_length": 3, "larger_than_backing": True})
    v2 = c.create("over-qcow2-v2.qcow2", 4 * MiB, {"compat": "0.10"}, backing=qbase, backing_fmt="qcow2")
    c.write(v2, ["write -P 0xa8 32k 4k", "write -z 0 64k"])
    c.add(v2, "qcow2", {"compat": "0.10", "backing": "qcow2", "chain_length": 2})
    small = c.create("over-smaller-base.qcow2", 8 * MiB + 512, backing=base, backing_fmt="raw")
    c.write(small, ["write -P 0xa9 6M 4k"])
    c.add(small, "qcow2", {"backing": "raw", "larger_than_backing": True, "odd_size": 8 * MiB + 512})


def build_snapshots(c):
    for compat in ("0.10", "1.1"):
        name = c.create(f"snapshots-{compat}.qcow2", 4 * MiB, {"compat": compat})
        c.write(name, ["write -P 0xd1 0 1M"])
        run("qemu-img", "snapshot", "-c", "first", name, cwd=c.dir)
        c.write(name, ["write -P 0xd2 512k 1M", "discard 0 64k"])
        run("qemu-img", "snapshot", "-c", "second", name, cwd=c.dir)
        c.write(name, ["write -z 1M 128k", "write -P 0xd3 3M 4k"])
        fix_snapshot_dates(c.path(name))
        c.add(name, "qcow2", {"compat": compat, "snapshots": 2})


def fix_snapshot_dates(path):
    """Replaces the creation times qemu-img snapshot -c recorded with fixed ones: same bytes every run."""
    image = qcow2_layout.Image(path)
    for index, entry in enumerate(image.snapshot_entry_offsets()):
        image.write(">I", entry + 16, 1_700_000_000 + index)  # date, seconds
        image.write(">I", entry + 20, 0)  # date, nanoseconds
    image.save()


def build(directory):
    os.makedirs(directory, exist_ok=True)
    c = Corpus(directory)
    build_create_options(c)
    build_extended_l2(c)
    build_compressed(c)
    build_backing_chains(c)
    build_snapshots(c)
    c.images += corpus_damage.build_all(c)
    manifest = {
        "qemu_img_version": run("qemu-img", "--version", cwd=directory).splitlines()[0],
        "images": c.images,
    }
    with open(os.path.join(directory, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    return manifest


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", help="directory to build the corpus in (emptied first)")
    args = parser.parse_args()
    if os.path.isdir(args.dir):
        shutil.rmtree(args.dir)
    manifest = build(args.dir)
    kinds = {}
    for image in manifest["images"]:
        kinds[image["kind"]] = kinds.get(image["kind"], 0) + 1
    print(f"{len(manifest['images'])} images in {args.dir}: "
          + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))


if __name__ == "__main__":
    main()
