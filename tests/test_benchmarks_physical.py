"""The physical-limit measures of the benchmarks (issue 15): each returns a positive figure, the
cold read says whether the page cache was really dropped, the report renders them. No timing is
checked against anything."""

from __future__ import annotations

from pathlib import Path

from benchmarks import physical, report

SIZE = 2 * 1024 * 1024


def test_a_written_file_has_its_size_and_a_warm_read_reads_all_of_it(tmp_path: Path) -> None:
    path = physical.write_file(tmp_path / "data.bin", SIZE + 123)
    assert path.stat().st_size == SIZE + 123
    rate = physical.read_warm(path, runs=2)
    assert rate.size == SIZE + 123
    assert rate.seconds > 0
    assert rate.bandwidth > 0
    assert rate.runs == 2


def test_the_cold_read_says_whether_the_pages_left_the_cache(tmp_path: Path) -> None:
    path = physical.write_file(tmp_path / "data.bin", SIZE)
    resident = physical.resident_fraction(path)
    cold = physical.read_cold(path, runs=2)
    assert cold.rate.size == SIZE
    assert cold.rate.seconds > 0
    if resident is None:
        # Nothing to check with: the figure is a warm read, and says so.
        assert cold.dropped is None
        assert cold.how.startswith("warm only")
    else:
        assert 0.0 <= resident <= 1.0
        assert cold.dropped is not None
        assert cold.how.startswith("page cache dropped" if cold.dropped else "warm only")
    # The read brought the pages back; a drop that reports success left none of them.
    dropped = physical.drop_from_cache(path)
    after = physical.resident_fraction(path)
    if dropped:
        assert after is not None
        assert after < 0.05


def test_decrypt_and_memcpy_measure_positive_bandwidths() -> None:
    for rate in (physical.aes_gcm_decrypt(SIZE, runs=2), physical.memcpy(SIZE, runs=2)):
        assert rate.size == SIZE
        assert rate.seconds > 0
        assert rate.seconds_for(2 * SIZE) > rate.seconds_for(SIZE) > 0


def test_limits_gathers_every_measure_and_the_report_shows_them(tmp_path: Path) -> None:
    limits = physical.limits(SIZE, tmp_path, runs=2)
    assert not (tmp_path / "physical-limit.bin").exists()
    assert limits["bytes"] == SIZE
    for key in ("file_read_cold", "file_read_warm", "aes_gcm_decrypt", "memcpy"):
        assert limits[key]["seconds"] > 0, key
        assert limits[key]["size"] > 0, key
    assert limits["file_read_cold"]["dropped"] in (True, False, None)
    assert limits["restore_limit_s"] > 0
    text = report.physical_section(limits)
    for label in ("file read, cold cache", "file read, warm cache", "AES-256-GCM", "memcpy"):
        assert label in text
    assert limits["file_read_cold"]["how"] in text
    assert "MiB/s" in text
