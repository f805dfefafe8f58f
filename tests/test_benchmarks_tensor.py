"""Smoke run of the tensor workload (benchmarks/tensor_bench.py): tiny size, few runs.

Checks that every figure is produced and that the restored tensors were the saved ones; it never
checks a timing against the goal (benchmarks report, they do not assert).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import tensor_bench

pytest.importorskip("torch")


def test_the_tensor_workload_reports_save_and_restore_beside_the_physical_path(
    tmp_path: Path,
) -> None:
    result = tensor_bench.run(device="cpu", mib=3, runs=2, root=tmp_path)
    assert result["status"] == "ok", result
    assert result["tensor_bytes"] == 3 * tensor_bench.MiB
    for side, steps in (
        ("save", {"encrypt (AES-GCM)", "file write + fsync"}),
        ("restore", {"decrypt (AES-GCM)", tensor_bench.READ_NEW_MEMORY}),
    ):
        assert set(result[side]["physical_mb_per_s"]) == steps
        assert result[side]["mb_per_s"] > 0
        assert result[side]["slowest"] in steps
    # The warm-cache read stays, as a reference beside the restore's verdict, never deciding it.
    assert result["save"]["reference_mb_per_s"] == {}
    restore = result["restore"]
    assert set(restore["reference_mb_per_s"]) == {tensor_bench.READ_WARM_CACHE}
    warm = restore["reference_mb_per_s"][tensor_bench.READ_WARM_CACHE]
    assert warm > 0
    assert restore["reference_ratio"][tensor_bench.READ_WARM_CACHE] == pytest.approx(
        restore["mb_per_s"] / warm
    )
    assert restore["reference_note"] == tensor_bench.READ_ROWS_NOTE
    # A save hashes each blob to name it; a format 4 restore reads the name back and hashes
    # nothing, and the breakdown says so instead of showing a hashing pass it does not run.
    assert set(result["save"]["format_mb_per_s"]) == {"blob id (HMAC-SHA256)"}
    assert result["save"]["format_note"] is None
    assert result["restore"]["format_mb_per_s"] == {}
    assert result["restore"]["format_note"] == tensor_bench.RESTORE_FORMAT_NOTE
    assert set(result["layer_ms"]) == {
        "capture (reducers, pickling)",
        "rebuild on decrypted buffers",
    }
    text = tensor_bench.format_result(result)
    assert "of the slowest physical step" in text
    restore_part = text[text.index("  restore") :]
    assert "HMAC" not in restore_part
    assert "format:   blob id sealed in the blob, proven by the decryption: nothing hashed" in text
    assert f"physical: {tensor_bench.READ_NEW_MEMORY}" in restore_part
    assert f"reference: {tensor_bench.READ_WARM_CACHE}" in restore_part
    assert "not the verdict's" in restore_part
    assert tensor_bench.READ_ROWS_NOTE in restore_part


def test_a_missing_device_is_reported_not_measured(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = tensor_bench.run(device="cuda", mib=1, runs=1, root=tmp_path)
    assert result == {"status": "unavailable", "reason": "no cuda on this machine"}
