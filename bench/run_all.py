"""Every benchmark in one run, and one table of what they measured: each
figure, its target, and the floor or peer it is read against, measured in the
same run (COPY, the GROUP BY + UPDATE floor, django-import-export tuned, the
gateway's cap).

    .venv/bin/python bench/run_all.py [--seed] [--only NAME ...] [--skip NAME ...]

--only re-runs the named benches and keeps the others' figures from the last
run in the table. --seed builds the data set first: the PostgreSQL database crm_bench dropped
and made again, migrated, 1,000,000 members with ~20M orders (seed_demo) and
their first recompute. Without it the existing crm_bench is used. Needs
PostgreSQL (BENCH_PG, default postgres://postgres@127.0.0.1:5432) and Redis
(BENCH_REDIS, default redis://127.0.0.1:6379/14). About 50 minutes on this
2-core machine with --seed. Each script's own output goes to
data/bench/<name>.txt; the table is printed at the end and written to
data/bench/run_all.md."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time

from _common import OUT, PYTHON, ROOT, bench_env, database_made_again, seed_steps, vacuum_command

# In this order: the ones that only read first; the fan-out (a million more outbox rows) last.
BENCHES = {
    "import": ["bench/import.py"],
    "recompute": ["bench/recompute.py", "--as-of", "{as_of}"],
    "loyalty": ["bench/loyalty.py", "--as-of", "{as_of}"],
    "admin_latency": ["bench/admin_latency.py", "--repeat", "20"],
    "dashboard": ["bench/dashboard.py", "--repeat", "20", "--days", "3"],
    "history": ["bench/history.py", "--weeks", "52", "--snapshots", "8"],
    "journeys": ["bench/journeys.py"],
    "load": ["bench/load.py", "--seconds", "90", "--as-of", "{as_of}"],
    "api": ["bench/api.py"],
    "fanout": ["bench/fanout.py"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", action="store_true", help="drop crm_bench and build the 1M data set first")
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--as-of", type=dt.date.fromisoformat, default=dt.date.today())
    parser.add_argument("--only", nargs="*", choices=BENCHES, default=None)
    parser.add_argument("--skip", nargs="*", choices=BENCHES, default=[])
    args = parser.parse_args()
    env = bench_env("crm_bench")
    out = OUT
    out.mkdir(parents=True, exist_ok=True)
    figures = out / "figures.jsonl"
    # --only re-runs some benches and keeps the other benches' figures from the last run.
    kept = [line for line in figures.read_text().splitlines() if json.loads(line)["bench"] not in args.only] if args.only and figures.exists() else []
    figures.write_text("".join(line + "\n" for line in kept))
    env["BENCH_FIGURES"] = str(figures)
    started = time.monotonic()
    steps: list[tuple[str, float, int]] = []

    def step(name: str, command: list[str]) -> None:
        begun = time.monotonic()
        print(f"==> {name}: {' '.join(command)}", flush=True)
        with open(out / f"{name}.txt", "w") as log:
            code = subprocess.run(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
        steps.append((name, time.monotonic() - begun, code))
        print(f"    {'ok' if code == 0 else f'FAILED (exit {code}), see ' + str(out / (name + '.txt'))} in {time.monotonic() - begun:.0f} s", flush=True)

    if args.seed:
        database_made_again("crm_bench")
        for name, command in seed_steps(args.members, args.as_of.isoformat()):
            step(name, command)
    step("vacuum", vacuum_command())
    for name, command in BENCHES.items():
        if (args.only and name not in args.only) or name in args.skip:
            continue
        step(name, [PYTHON, *(part.format(as_of=args.as_of.isoformat()) for part in command)])

    rows = [json.loads(line) for line in figures.read_text().splitlines()] if figures.exists() else []
    table = render(rows, steps, time.monotonic() - started, args)
    (out / "run_all.md").write_text(table)
    print()
    print(table)
    sys.exit(1 if any(code for _name, _seconds, code in steps) else 0)


def render(rows: list[dict], steps: list[tuple[str, float, int]], seconds: float, args) -> str:
    verdict = {True: "met", False: "**missed**", None: ""}
    lines = [
        f"run_all on {dt.date.today()}, {platform.node()}: {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, PostgreSQL + Redis on the same machine; "
        f"{args.members:,} members as of {args.as_of}; {seconds / 60:.0f} minutes in all",
        "",
        "| bench | figure | value | target | verdict | floor, peer or detail (same run) |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['bench']} | {row['figure']} | {row['value']} | {row['target']} | {verdict[row['met']]} | {row['against']} |"
        )
    lines += ["", "| step | minutes | exit |", "|---|---|---|"]
    lines += [f"| {name} | {seconds / 60:.1f} | {code} |" for name, seconds, code in steps]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
