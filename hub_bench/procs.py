"""CPU time and memory of a process and all its descendants, read from /proc (Linux, no dependency).

CPU of the tree at an instant is the sum, over the processes alive in it, of their own user+system
time plus the time of the children they already reaped (``cutime``/``cstime``). A worker that exits
(django-q2 recycles workers) is reaped by its parent, so its time moves into the parent's ``cutime``
and is never lost nor counted twice.
"""
import os
import threading
import time

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def read_stat(pid):
    """(ppid, cpu_seconds_including_reaped_children, start_ticks) or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read().decode("ascii", "replace")
    except OSError:
        return None
    # The command name may contain spaces and parentheses: fields start after the last ')'.
    fields = raw[raw.rfind(")") + 2:].split()
    ppid = int(fields[1])
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    start = int(fields[19])
    return ppid, (utime + stime + cutime + cstime) / CLOCK_TICKS, start


def read_memory_kb(pid):
    """{"hwm": VmHWM, "rss": VmRSS, "pss": Pss} in kB (missing values are 0)."""
    out = {"hwm": 0, "rss": 0, "pss": 0}
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    out["hwm"] = int(line.split()[1])
                elif line.startswith(b"VmRSS:"):
                    out["rss"] = int(line.split()[1])
    except OSError:
        return out
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            for line in fh:
                if line.startswith(b"Pss:"):
                    out["pss"] = int(line.split()[1])
                    break
    except OSError:
        out["pss"] = out["rss"]
    return out


def descendants(root):
    """The pids of `root` and every process below it."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        stat = read_stat(int(name))
        if stat is not None:
            children.setdefault(stat[0], []).append(int(name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


class TreeSampler:
    """Samples a process tree on a background thread: CPU seconds, peak VmHWM, peak summed RSS/PSS."""

    def __init__(self, root_pids, interval=0.5):
        self.roots = list(root_pids)
        self.interval = interval
        self.hwm_kb = {}           # (pid, start) -> highest VmHWM seen
        self.peak_rss_sum_kb = 0   # highest sum of VmRSS over the tree at one instant
        self.peak_pss_sum_kb = 0   # highest sum of Pss (shared pages split between sharers)
        self.max_processes = 0
        self._cpu = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None

    def sample(self):
        pids = [p for root in self.roots for p in descendants(root)]
        cpu, rss, pss = 0.0, 0, 0
        alive = 0
        for pid in pids:
            stat = read_stat(pid)
            if stat is None:
                continue
            alive += 1
            cpu += stat[1]
            mem = read_memory_kb(pid)
            rss += mem["rss"]
            pss += mem["pss"]
            key = (pid, stat[2])
            with self._lock:
                self.hwm_kb[key] = max(self.hwm_kb.get(key, 0), mem["hwm"])
        with self._lock:
            self._cpu = max(self._cpu, cpu)  # reaping can lag a sample behind; time never goes back
            self.peak_rss_sum_kb = max(self.peak_rss_sum_kb, rss)
            self.peak_pss_sum_kb = max(self.peak_pss_sum_kb, pss)
            self.max_processes = max(self.max_processes, alive)
        return cpu

    def cpu_seconds(self):
        """CPU of the tree now (takes a fresh sample)."""
        self.sample()
        with self._lock:
            return self._cpu

    @property
    def hwm_sum_kb(self):
        with self._lock:
            return sum(self.hwm_kb.values())

    def start(self):
        def run():
            while not self._stop.wait(self.interval):
                try:
                    self.sample()
                except Exception:  # a process vanishing mid-read must not stop the sampling
                    pass

        self.sample()
        self._thread = threading.Thread(target=run, name="tree-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        return self


def server_roots(names=("postgres", "redis-server")):
    """Pids of the top process of each local database server (its backends are its children, and
    the CPU of backends that exited is in its cutime)."""
    comm = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/comm") as fh:
                    comm[int(name)] = fh.read().strip()
            except OSError:
                pass
    roots = []
    for pid, command in comm.items():
        if command in names:
            stat = read_stat(pid)
            if stat is not None and comm.get(stat[0]) != command:
                roots.append(pid)
    return roots


def machine_cpu_seconds():
    """(busy, total) CPU seconds of the whole machine since boot, all cores (from /proc/stat)."""
    with open("/proc/stat") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


def wait_for(predicate, timeout, interval=0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()
