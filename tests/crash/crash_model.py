"""What a crashed crash_driver run may have left: built from the lines the driver printed.

Every sector the driver writes holds one byte value. A sector may read as the value it had at the last
acknowledged flush ("A") or as any value written to it since; the virtual size likewise. Snapshots and
convert targets whose operation returned ("OK") are exact copies of the guest view at that time.
"""

SECTOR = 512
MAX_SIZE = 12 << 20


class Model:
    def __init__(self, size, initial):
        """initial: (offset, length, value) ranges of the guest view at the start; the rest is zero."""
        self.current = [0] * (MAX_SIZE // SECTOR)
        for off, length, value in initial:
            for s in range(off // SECTOR, (off + length) // SECTOR):
                self.current[s] = value
        self.stable = [{v} for v in self.current]
        self.pending = {}  # sector -> values written since the last acknowledged flush
        self.size = size
        self.sizes = {size}  # sizes the image may have after a crash
        self.snapshots = {}  # name -> (size, contents, committed since) once created and acknowledged
        self.maybe_snapshots = set()  # created or deleted, not acknowledged
        self.converts = {}  # target name -> (size, contents) once returned
        self.started_converts = []
        self.committed = False  # a commit was started (the base image was written)
        self.issued = None  # the line of the operation in progress
        self.crashed = False
        self.error = None
        self.count = None

    def _write(self, off, length, value):
        for s in range(off // SECTOR, (off + length) // SECTOR):
            self.pending.setdefault(s, set()).add(value)

    def _done(self, line):
        word = line.split()
        if word[0] in ("W", "Z", "D"):
            off, length = int(word[1]), int(word[2])
            value = int(word[3]) if word[0] == "W" else 0
            for s in range(off // SECTOR, (off + length) // SECTOR):
                self.current[s] = value
        elif word[0] == "SC":
            self.snapshots[word[1]] = (self.size, list(self.current[: self.size // SECTOR]), False)
            self.maybe_snapshots.discard(word[1])
        elif word[0] == "SD":
            self.snapshots.pop(word[1], None)
            self.maybe_snapshots.discard(word[1])
        elif word[0] == "V":
            self.converts[word[1]] = (self.size, list(self.current[: self.size // SECTOR]))

    def feed(self, line):
        word = line.split()
        if not word:
            return
        kind = word[0]
        if kind in ("W", "Z", "D"):
            value = int(word[3]) if kind == "W" else 0
            self._write(int(word[1]), int(word[2]), value)
            self.issued = line
        elif kind == "R":
            self.sizes.add(int(word[1]))
            self.issued = line
        elif kind in ("SC", "SD"):
            self.maybe_snapshots.add(word[1])
            self.snapshots.pop(word[1], None)
            self.issued = line
        elif kind == "C":
            self.committed = True
            # The overlay's guest view stays; a snapshot's unallocated clusters now read what was
            # committed into the backing file, so its contents are no longer known exactly.
            self.snapshots = {n: (z, c, True) for n, (z, c, _) in self.snapshots.items()}
            self.issued = line
        elif kind == "V":
            self.started_converts.append(word[1])
            self.issued = line
        elif kind == "OK":
            if self.issued is not None:
                self._done(self.issued)
            self.issued = None
        elif kind == "A":
            if self.issued is not None and self.issued.startswith("R "):
                self.size = int(self.issued.split()[1])
            for s in self.pending:
                self.stable[s] = {self.current[s]}
            self.pending = {}
            self.sizes = {self.size}
        elif kind == "CRASH":
            self.crashed = True
        elif kind == "ERR":
            self.error = line
        elif kind == "COUNT":
            self.count = (int(word[1]), int(word[2]))

    def allowed(self, sector):
        extra = self.pending.get(sector)
        return self.stable[sector] | extra if extra else self.stable[sector]

    def check_guest(self, data):
        """Returns a description of the first sector that no crash could have left, or None."""
        if len(data) not in self.sizes:
            return f"virtual size {len(data)}, expected one of {sorted(self.sizes)}"
        for s in range(len(data) // SECTOR):
            chunk = data[s * SECTOR : (s + 1) * SECTOR]
            first = chunk[0]
            if chunk.count(first) != SECTOR:
                return f"sector {s} (offset {s * SECTOR}) mixes values {sorted(set(chunk))}"
            if first not in self.allowed(s):
                return (f"sector {s} (offset {s * SECTOR}) reads {first:#x}, "
                        f"expected one of {sorted(self.allowed(s))}")
        return None


def check_exact(data, size, contents):
    """Compares an image's guest view with recorded sector values; returns a description or None."""
    if len(data) != size:
        return f"virtual size {len(data)}, expected {size}"
    for s, value in enumerate(contents):
        if data[s * SECTOR : (s + 1) * SECTOR] != bytes([value]) * SECTOR:
            return f"sector {s} (offset {s * SECTOR}) differs from {value:#x}"
    return None
