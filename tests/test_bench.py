"""A small run of the benchmark, so that it keeps working. Its timings mean nothing here:
performance is measured with bench/run.sh, not in tests."""

import json
import subprocess
import sys

from conftest import ROOT

# What every table's run times: token_sync's paths and psql \copy, at 4 fetches at once and 20 ms.
TOKEN_SYNC_AND_COPY = [
    "token_sync_day, no latency, concurrency 4",
    "token_sync_day, defaults: first load",
    "token_sync_day, defaults: re-sync, unchanged day",
    "token_sync_day, defaults: re-sync, one row changed",
    "token_sync_day, defaults: re-sync, a row changed every hour",
    "token_sync_day, defaults: re-sync, one row changed, metadata unreadable (compared)",
    "token_sync_day, Storage Read API, defaults: first load",
    "token_sync_day, 20 ms/page, concurrency 1",
    "token_sync_day, 20 ms/page, concurrency 4",
    "psql \\copy",
]


def test_benchmark_runs_every_path_and_each_loads_the_whole_day(tmp_path):
    out = tmp_path / "bench.json"
    subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--rows", "1500", "--runs", "1",
                    "--latency-ms", "20", "--concurrency", "4", "--json", str(out)],
                   check=True, capture_output=True, timeout=600)
    result = json.loads(out.read_text())
    assert result["rows"] == 1500
    assert sorted(result["medians"]) == sorted(TOKEN_SYNC_AND_COPY + [
        "python client + to_sql", "token_sync_day from bqemulator, concurrency 4"])
    for name, runs in result["runs"].items():
        assert len(runs) == 1 and runs[0]["seconds"] > 0
        if name.startswith("token_sync_day"):
            assert runs[0]["rss_kib"] is not None


def test_benchmark_of_a_transactions_day_runs_token_sync_and_copy(tmp_path):
    out = tmp_path / "bench.json"
    subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--table", "transactions", "--rows", "1500",
                    "--runs", "1", "--latency-ms", "20", "--concurrency", "4", "--json", str(out)],
                   check=True, capture_output=True, timeout=600)
    result = json.loads(out.read_text())
    assert (result["table"], result["rows"]) == ("transactions", 1500)
    assert sorted(result["medians"]) == sorted(TOKEN_SYNC_AND_COPY)


def test_backfill_benchmark_loads_every_day_at_each_parallel(tmp_path):
    out = tmp_path / "backfill.json"
    completed = subprocess.run([sys.executable, str(ROOT / "bench" / "backfill.py"), "--days", "6", "--rows", "300",
                                "--job-ms", "100", "--page-ms", "10", "--runs", "1", "--json", str(out)],
                               check=True, capture_output=True, text=True, timeout=600)
    result = json.loads(out.read_text())
    assert sorted(result["seconds"]) == ["1", "4", "8"]
    assert all(len(times) == 1 for times in result["seconds"].values())
    assert "| 8 |" in completed.stdout and "× parallel 1" in completed.stdout
