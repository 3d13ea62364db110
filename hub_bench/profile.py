"""A readable summary of a py-spy raw profile (``py-spy record --format raw``: one line per distinct
stack, ``frame;frame;...;frame COUNT``, outermost first).

Three tables, over the samples in which a thread was running Python code (py-spy skips idle
threads by default): where the time is spent (self), what it is spent under (inclusive: a function
and everything it calls, counted once per sample), and by area (the package of the innermost frame
that belongs to the hub, else the library of the innermost frame).
"""
import collections
import re

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
HUB_PACKAGES = ("integration/", "erp_plugins/")


def _parse(frame):
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip(), ""
    return match["func"], match["file"]


def _short(path):
    for marker in ("site-packages/", "lib/python3"):
        if marker in path:
            return path.split(marker, 1)[1].lstrip("/")
    return path


def _area(frames):
    # Every main thread runs under manage.py's own <module> frame: only a <module> below it (or
    # the import machinery) is an import; counting the outermost one put every main thread's
    # work (the first dispatch of each worker included) under "imports".
    if any(func == "<module>" or func.startswith("_find_and_load") or func == "import_module" for func, _ in frames[1:]):
        return "imports (start-up)"
    for func, path in reversed(frames):
        for package in HUB_PACKAGES:
            if package in path:
                rest = path.split(package, 1)[1]
                return package + rest.split("/", 1)[0].replace(".py", "")
    func, path = frames[-1]
    short = _short(path)
    return (short.split("/", 1)[0] if "/" in short else short) or func


def summarize_raw(path, top=25):
    """(text, [(share, function)] of the top inclusive entries under the hub's own code)."""
    self_counts, incl_counts, areas = collections.Counter(), collections.Counter(), collections.Counter()
    total = 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.rstrip("\n")
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            frames = [_parse(f) for f in stack.split(";")]
            frames = [f for f in frames if ".py" in f[1]]  # drop py-spy's process/thread pseudo-frames
            if not frames:
                continue
            total += n
            func, file = frames[-1]
            self_counts[f"{func} ({_short(file)})"] += n
            seen = set()
            for func, file in frames:
                key = f"{func} ({_short(file)})"
                if key not in seen:
                    seen.add(key)
                    incl_counts[key] += n
            areas[_area(frames)] += n
    if not total:
        raise OSError("the profile holds no samples")

    def table(counter, title):
        rows = [title]
        for key, n in counter.most_common(top):
            rows.append(f"  {n * 100.0 / total:5.1f} %  {key}")
        return rows

    hub_incl = collections.Counter({k: v for k, v in incl_counts.items() if any(p in k for p in HUB_PACKAGES)})
    lines = [f"py-spy profile: {total} samples of running threads (all hub processes)", ""]
    lines += table(areas, "By area (innermost hub package, else the library running):") + [""]
    lines += table(self_counts, "Self (where the CPU is spent):") + [""]
    lines += table(hub_incl, "Inclusive, the hub's own functions (what the CPU is spent under):")
    top_list = [(round(n * 100.0 / total, 1), key) for key, n in areas.most_common(8)]
    return "\n".join(lines) + "\n", top_list
