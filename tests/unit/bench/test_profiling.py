"""The collapsed-stack reading and CPU accounting behind bench_pipeline --profile."""

from __future__ import annotations

import os
from pathlib import Path

from bench.profiling import by_product_call, cpu_by_process, cpu_delta, top_frames


def test_top_frames_counts_leaves_as_self_and_each_frame_once_as_inclusive(
    tmp_path: Path,
) -> None:
    raw = tmp_path / "fn.txt"
    raw.write_text(
        'process 7:"python -m functions_framework";run (a.py:1);send (b.py:2) 5\n'
        "run (a.py:1);walk (c.py:3);walk (c.py:3);encode (d.py:4) 3\n"
        "run (a.py:1) 2\n"
    )

    total, self_time, inclusive = top_frames(raw)

    assert total == 10
    assert self_time == {"send (b.py:2)": 5, "encode (d.py:4)": 3, "run (a.py:1)": 2}
    # The recursive walk counts once per sample; the process root is no frame.
    assert inclusive["walk (c.py:3)"] == 3
    assert inclusive["run (a.py:1)"] == 10
    assert not any(frame.startswith("process ") for frame in inclusive)


def test_cpu_by_process_sums_the_live_processes_of_each_group() -> None:
    own_group = os.getpgrp()
    before = cpu_by_process({own_group: "bench"})
    sum(i * i for i in range(2_000_000))  # burn some CPU in this group
    after = cpu_by_process({own_group: "bench"})

    assert set(after) == {"bench"}
    assert cpu_delta(before, after)["bench"] > 0


def test_by_product_call_names_our_deepest_frame_and_the_library_call_it_made(
    tmp_path: Path,
) -> None:
    raw = tmp_path / "fn.txt"
    raw.write_text(
        "handle (gunicorn/w.py:1);sender (main.py:2);update (shared/store/m.py:3);"
        "DocumentReference.update (firestore_v1/document.py:4);"
        "to_proto (proto/marshal.py:5) 4\n"
        "handle (gunicorn/w.py:1);sender (main.py:2) 1\n"
        "handle (gunicorn/w.py:1);select (selectors.py:6) 2\n"
    )

    calls = by_product_call(raw)

    assert calls == {
        "update -> DocumentReference.update [firestore_v1]": 4,
        "sender": 1,
        "(plumbing: selectors)": 2,
    }
