"""psutil views of the target's process tree, the load generator and the host."""

from __future__ import annotations

import psutil


class ProcessTree:
    """CPU, memory, threads and fds of a root process and all its descendants.

    psutil's cpu_percent needs the same Process object between calls, so the objects
    are kept and children found since the last call are added (their first reading
    counts from when they were first seen).
    """

    def __init__(self, root_pid: int | None):
        self.root_pid = root_pid
        self._procs: dict[int, psutil.Process] = {}

    def _refresh(self) -> list[psutil.Process]:
        if self.root_pid is None:
            return []
        try:
            root = self._procs.get(self.root_pid) or psutil.Process(self.root_pid)
            members = [root] + root.children(recursive=True)
        except psutil.Error:
            self._procs.clear()
            return []
        live = {}
        for proc in members:
            known = self._procs.get(proc.pid)
            if known is None:
                try:
                    proc.cpu_percent(None)   # prime: the first reading is always 0
                except psutil.Error:
                    continue
                known = proc
            live[proc.pid] = known
        self._procs = live
        return list(live.values())

    def sample(self) -> dict:
        """Return cpu_percent (of one core, summed), rss_mb, threads, fds, workers."""
        procs = self._refresh()
        if not procs:
            return {"cpu_percent": None, "rss_mb": None, "threads": None, "fds": None,
                    "target_workers": None}
        cpu = rss = threads = fds = 0.0
        for proc in procs:
            try:
                with proc.oneshot():
                    cpu += proc.cpu_percent(None)
                    rss += proc.memory_info().rss
                    threads += proc.num_threads()
                    fds += proc.num_fds()
            except psutil.Error:
                continue
        return {"cpu_percent": round(cpu, 2), "rss_mb": round(rss / 2**20, 2),
                "threads": threads, "fds": fds, "target_workers": max(len(procs) - 1, 0)}


class ProcessGroup:
    """CPU of a fixed set of processes (the Locust master and workers), per process and summed."""

    def __init__(self, pids: list[int]):
        self._procs = []
        for pid in pids:
            try:
                proc = psutil.Process(pid)
                proc.cpu_percent(None)
                self._procs.append(proc)
            except psutil.Error:
                pass

    def sample(self) -> tuple[float | None, dict[int, float]]:
        if not self._procs:
            return None, {}
        per = {}
        for proc in self._procs:
            try:
                per[proc.pid] = proc.cpu_percent(None)
            except psutil.Error:
                continue
        return round(sum(per.values()), 2), per


def host_sample() -> dict:
    return {"sys_cpu_percent": psutil.cpu_percent(None),
            "sys_mem_percent": psutil.virtual_memory().percent}


def listener_pid(port: int) -> int | None:
    """Return the pid of the process listening on a local TCP port (the root of its tree)."""
    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return None
    for conn in conns:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            proc = psutil.Process(conn.pid)
            # Climb to the gunicorn master: workers share its listening socket.
            try:
                parent = proc.parent()
                while parent is not None and "gunicorn" in " ".join(parent.cmdline()):
                    proc, parent = parent, parent.parent()
            except psutil.Error:
                pass
            return proc.pid
    return None
