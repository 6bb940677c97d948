"""CPU accounting and py-spy sampling of the local stack's processes (bench only).

`cpu_by_process` reads each process group's CPU from /proc, so a benchmark can
print the CPU a run cost per process and per delivered message. `Profiler`
attaches `py-spy record --gil --format raw` (collapsed stacks) to chosen
processes for the duration of a phase; `top_frames` ranks the frames of one such
file by self and by inclusive samples.

Why --gil: py-spy's default keeps every thread it guesses is not idle, and that
guess counts threads blocked in gRPC and in Condition.wait, so sample counts do
not follow CPU. A thread holding the GIL is running Python, so GIL samples
times the interval is the process's Python CPU; native work without the GIL
(gRPC core, socket I/O in the kernel) is the gap up to its CPU seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

# The stack's own functions: what "product CPU" counts. The rest (emulators,
# Twilio simulator, task dispatcher, ticker) stand in for Google and Twilio.
PRODUCT = (
    "api",
    "twilio_webhooks",
    "campaign_scheduler",
    "message_sender",
    "segment_evaluator",
    "campaign_fanout",
    "receipt_updater",
    "inbound_processor",
    "event_router",
    "contact_importer",
)
# Sampled by --profile: the send path, plus the simulator and dispatcher to compare.
PROFILED = (
    "message_sender",
    "receipt_updater",
    "twilio_webhooks",
    "campaign_fanout",
    "segment_evaluator",
    "twilio-simulator",
    "task-dispatcher",
)
_TICKS = os.sysconf("SC_CLK_TCK")


def process_groups(endpoints: dict[str, Any]) -> dict[int, str]:
    """pgid → server name, from the stack's processes.json."""
    path = Path(endpoints.get("state_dir", "")) / "processes.json"
    if not path.exists():
        return {}
    return {int(r["pgid"]): r["name"] for r in json.loads(path.read_text())}


def _stat_fields(stat: str) -> list[str]:
    # The command name (field 2) may hold spaces; everything after ") " is fixed.
    return stat[stat.rindex(")") + 2 :].split()


def cpu_by_process(groups: dict[int, str]) -> dict[str, float]:
    """CPU seconds (user + system) used so far by the live processes of each group."""
    totals: dict[str, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = _stat_fields((entry / "stat").read_text())
        except OSError:
            continue  # the process exited meanwhile
        # After the command: state, ppid, pgrp, … utime (14th field), stime.
        pgrp, utime, stime = int(fields[2]), int(fields[11]), int(fields[12])
        if pgrp in groups:
            name = groups[pgrp]
            totals[name] = totals.get(name, 0.0) + (utime + stime) / _TICKS
    return totals


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before.get(name, 0.0) for name in after}


def print_cpu_table(delta: dict[str, float], messages: int) -> None:
    """CPU seconds per process and ms per delivered message, product total apart."""
    print("\nprocess               CPU s   ms/msg")
    for name, seconds in sorted(delta.items(), key=lambda kv: -kv[1]):
        mark = "*" if name in PRODUCT else " "
        print(f"{mark}{name:<20} {seconds:>6.1f}  {1000 * seconds / messages:>7.2f}")
    product = sum(s for n, s in delta.items() if n in PRODUCT)
    other = sum(s for n, s in delta.items() if n not in PRODUCT)
    print(
        f"product (*) CPU: {product:.1f} s = {1000 * product / messages:.2f} ms"
        f" per delivered message; the rest: {1000 * other / messages:.2f} ms"
    )


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise RuntimeError("py-spy not found: pip install -r requirements-dev.txt")
    return found


class Profiler:
    """py-spy attached to each named process group until `stop`."""

    def __init__(self, out_dir: Path, rate: int = 50) -> None:
        self.out_dir = out_dir
        self.rate = rate
        self.samplers: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, groups: dict[int, str], names: tuple[str, ...]) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for pgid, name in groups.items():
            if name not in names:
                continue
            argv = [
                py_spy(),
                "record",
                f"--pid={pgid}",  # the group leader: gunicorn's master
                "--subprocesses",  # and its workers
                "--gil",  # only the thread running Python (see the docstring)
                "--nonblocking",  # never pause the process measured
                "--function",  # one frame per function, not per line
                f"--rate={self.rate}",
                "--format=raw",
                f"--output={self.out_path(name)}",
            ]
            with open(self.out_dir / f"{name}.py-spy.log", "wb") as log:
                self.samplers[name] = subprocess.Popen(  # noqa: S603 - fixed argv
                    argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )

    def out_path(self, name: str) -> Path:
        return self.out_dir / f"{name}.txt"

    def stop(self, timeout: float = 60.0) -> None:
        """SIGINT makes py-spy write its file; wait for each to finish."""
        for sampler in self.samplers.values():
            sampler.send_signal(signal.SIGINT)
        for sampler in self.samplers.values():
            try:
                sampler.wait(timeout)
            except subprocess.TimeoutExpired:
                sampler.kill()


def _frames(stack: str) -> list[str]:
    # py-spy names a sampled child "process 123:"python -m …"": drop that root.
    return [f for f in stack.split(";") if not f.startswith("process ")]


def top_frames(path: Path) -> tuple[int, Counter[str], Counter[str]]:
    """Total samples, and samples by self (leaf) and by inclusive frame."""
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = _frames(stack)
        if not frames:
            continue
        total += count
        self_time[frames[-1]] += count
        for frame in set(frames):  # a recursive frame counts once per sample
            inclusive[frame] += count
    return total, self_time, inclusive


# Frames every request passes through: left out of the inclusive ranking (their
# own cost shows as self time and in the package table).
PLUMBING = ("threading", "concurrent", "gunicorn", "flask", "functions_framework")


def package(frame: str) -> str:
    """`f (grpc/_channel.py:1)` → `grpc`; a standard-library module keeps its name."""
    location = frame[frame.rfind("(") + 1 :].rsplit(":", 1)[0]
    return location.split("/")[0].removesuffix(".py")


def _is_ours(frame: str) -> bool:
    location = frame[frame.rfind("(") + 1 :]
    return location.startswith(("shared/", "local/", "main.py"))


def _name(frame: str) -> str:
    return frame.split(" (")[0]


def by_product_call(path: Path) -> Counter[str]:
    """Samples by the deepest frame of ours (shared/, local/, a main.py) and the
    library call it made: what each of our calls costs, libraries included.
    Samples with no frame of ours (server, framework, client threads) are
    `(plumbing: <leaf package>)`."""
    calls: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = _frames(stack) if count_text.isdigit() else []
        if not frames:
            continue
        ours = [i for i, frame in enumerate(frames) if _is_ours(frame)]
        if not ours:
            calls[f"(plumbing: {package(frames[-1])})"] += int(count_text)
            continue
        deepest = ours[-1]
        key = _name(frames[deepest])
        if deepest + 1 < len(frames):
            key += f" -> {_name(frames[deepest + 1])} [{package(frames[deepest + 1])}]"
        calls[key] += int(count_text)
    return calls


def print_ranking(title: str, counter: Counter[str], total: int, limit: int) -> None:
    print(f"-- top {limit} by {title}")
    for frame, count in counter.most_common(limit):
        print(f"{100 * count / max(total, 1):6.1f}% {count:>6}  {frame}")


def print_profile(path: Path, name: str, rate: int, limit: int = 15) -> None:
    if not path.exists():
        print(f"\n== {name}: no profile ({path} missing)")
        return
    total, self_time, inclusive = top_frames(path)
    print(f"\n== {name}: {total} GIL samples = {total / rate:.1f} s of Python CPU")
    by_package: Counter[str] = Counter()
    for frame, count in self_time.items():
        by_package[package(frame)] += count
    print_ranking("self time per package", by_package, total, limit)
    print_ranking("self", self_time, total, limit)
    request_path = Counter(
        {f: n for f, n in inclusive.items() if package(f) not in PLUMBING}
    )
    print_ranking(
        f"inclusive (without {', '.join(PLUMBING)})", request_path, total, limit
    )
    print_ranking("our call -> library call", by_product_call(path), total, limit)


class PhaseMeter:
    """CPU per process over one phase of a run, sampled by py-spy if asked."""

    def __init__(
        self, endpoints: dict[str, Any], profile_dir: Path | None, rate: int = 50
    ) -> None:
        self.groups = process_groups(endpoints)
        self.profile_dir = profile_dir
        self.rate = rate
        self.profiler: Profiler | None = None
        self.before: dict[str, float] = {}
        self.delta: dict[str, float] = {}

    def start(self, label: str) -> None:
        if self.profile_dir is not None:
            self.profiler = Profiler(self.profile_dir / label, self.rate)
            self.profiler.start(self.groups, PROFILED)
        self.before = cpu_by_process(self.groups)

    def stop(self) -> None:
        self.delta = cpu_delta(self.before, cpu_by_process(self.groups))
        if self.profiler is not None:
            self.profiler.stop()

    def report(self, messages: int) -> None:
        print_cpu_table(self.delta, messages)
        if self.profiler is None:
            return
        for name in PROFILED:
            if name in self.profiler.samplers:
                print_profile(self.profiler.out_path(name), name, self.rate)
