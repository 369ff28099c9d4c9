"""Turn the benchmark's hyperfine and /usr/bin/time outputs into one table
of medians and the ratios the project holds itself to."""

import argparse
import json
import pathlib
import platform
import statistics
import subprocess

MIB = 1024 * 1024


def median_ms(work: pathlib.Path, name: str) -> float:
    data = json.loads((work / f"{name}.json").read_text())
    return statistics.median(data["results"][0]["times"]) * 1000


def rss_kib(work: pathlib.Path, name: str) -> int:
    return int((work / f"{name}.rss").read_text().strip())


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    fs = subprocess.run(["df", "-T", "."], capture_output=True, text=True).stdout.splitlines()[-1].split()[1]
    return f"{cpu}, {cores} cores, {platform.system()} {platform.release()}, {fs} file system"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("work", type=pathlib.Path)
    parser.add_argument("--binary")
    parser.add_argument("--binary-bytes", type=int)
    parser.add_argument("--large-bytes", type=int)
    parser.add_argument("--large-rows", type=int)
    parser.add_argument("--image-bytes", default="")
    parser.add_argument("--image-source", default="")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    w = args.work

    rows = []
    for shape in ("alembic", "startup"):
        rows.append((f"full run (insert), {shape}", median_ms(w, f"ours-full-{shape}"), median_ms(w, f"sqlite3-full-{shape}"), rss_kib(w, f"ours-full-{shape}")))
        rows.append((f"no-op run, {shape}", median_ms(w, f"ours-noop-{shape}"), median_ms(w, f"sqlite3-noop-{shape}"), rss_kib(w, f"ours-noop-{shape}")))
    rows.append(("no-op run with a management key, start-up shape (1 request to a local stand-in)",
                 median_ms(w, "ours-noop-minting"), None, rss_kib(w, "ours-noop-minting")))
    large = median_ms(w, "ours-noop-large")
    rows.append((f"no-op run, {args.large_bytes / MIB / 1024:.2f} GiB database", large, None, rss_kib(w, "ours-noop-large")))

    print(f"Machine: {machine()}; {args.runs} runs per case, medians.\n")
    print("| case | mai-provision (ms) | sqlite3 shell (ms) | peak RSS (KiB) |")
    print("|---|---:|---:|---:|")
    for name, ours, lower, rss in rows:
        lower_text = f"{lower:.2f}" if lower is not None else "—"
        print(f"| {name} | {ours:.2f} | {lower_text} | {rss} |")

    pg_rows = []
    if args.postgres:
        for case in ("full", "noop"):
            name = "full run (insert)" if case == "full" else "no-op run"
            pg_rows.append((f"{name}, PostgreSQL", median_ms(w, f"ours-{case}-postgres"), median_ms(w, f"psql-{case}-postgres"), rss_kib(w, f"ours-{case}-postgres")))
        print("\n| case | mai-provision (ms) | psql (ms) | peak RSS (KiB) |")
        print("|---|---:|---:|---:|")
        for name, ours, lower, rss in pg_rows:
            print(f"| {name} | {ours:.2f} | {lower:.2f} | {rss} |")

    full = max(r[1] / r[2] for r in rows if r[0].startswith("full"))
    noop = max(r[1] / r[2] for r in rows if r[0].startswith("no-op run, a") or r[0].startswith("no-op run, s"))
    small_noop = median_ms(w, "ours-noop-startup")
    peak = max(r[3] for r in rows + pg_rows) / 1024
    binary = args.binary_bytes / MIB
    goals = [
        ("ours / sqlite3, full run (worst shape)", full, 1.5, f"{full:.2f}"),
        ("ours / sqlite3, no-op run (worst shape)", noop, 1.0, f"{noop:.2f}"),
        ("large database / small database, no-op", large / small_noop, 1.2, f"{large / small_noop:.2f}"),
        ("peak RSS (MiB)", peak, 4.0, f"{peak:.2f}"),
        ("binary size (MiB)", binary, 3.5, f"{binary:.2f}"),
    ]
    for name, ours, lower, _ in pg_rows:
        goals.append((f"ours / psql, {name}", ours / lower, 1.5, f"{ours / lower:.2f}"))
    print("\n| ratio | value | goal | met |")
    print("|---|---:|---:|---|")
    for name, value, goal, text in goals:
        print(f"| {name} | {text} | ≤ {goal} | {'yes' if value <= goal else 'NO'} |")
    if args.image_bytes:
        print(f"\nImage ({args.image_source}): {int(args.image_bytes)} bytes, {int(args.image_bytes) / MIB:.2f} MiB.")
    else:
        print("\nImage size: no image on this machine; build one with docker build . or run tests/e2e/run.sh.")
    print(f"Binary: {args.binary} ({args.binary_bytes} bytes).")


if __name__ == "__main__":
    main()
