"""How cost grows with the number of members: the same benches at 100k, 300k
and 1M members (3M with --sizes), and for each figure the slope of
log(cost) against log(members). Batch work should grow no faster than
linearly (slope at most 1.1); a page or a lookup should not grow (slope near 0).

    .venv/bin/python bench/scale.py [--sizes 100000 300000 1000000] [--reuse] [--as-of DAY]

Each size has its own PostgreSQL database, crm_scale_<members> (the 1M one is
crm_bench when it exists and --reuse is given), made with seed_demo and a first
recompute, then vacuumed. Per size it runs bench/recompute.py (full run,
nightly after a 2% day, one member after an order, circle counts),
bench/admin_latency.py (the 17 admin pages one at a time), bench/fanout.py
(a campaign to every member, end to end) and a standing lookup (member_read +
standing_of, in-process, 200 random members), reading their figures from
BENCH_FIGURES. Prints one table and writes it with an SVG chart to
data/bench/scale.md and data/bench/scale.svg. Needs PostgreSQL (BENCH_PG) and
Redis (BENCH_REDIS), like run_all.py."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import re
import subprocess
import time

from _common import (
    OUT, PYTHON, ROOT, bench_env, database_exists, database_made_again, django_setup, percentile, record, seed_steps, vacuum_command,
)

# figure name in BENCH_FIGURES → (label, kind): "batch" should grow at most linearly, "flat" not at all.
FIGURES = {
    "recompute: all metrics, churn fit, circles": ("full recompute (s)", "batch"),
    "recompute: nightly after a 2% day": ("nightly after a 2% day (s)", "batch"),
    "recompute: one member after an order": ("one member after an order, p95 (ms)", "flat"),
    "circle preview count, slowest circle": ("circle preview, slowest (ms)", "flat"),
    "admin pages, worst p95": ("17 admin pages, worst p95 (ms)", "flat"),
    "admin pages, median p95": ("17 admin pages, median p95 (ms)", "flat"),
    "standing lookup p95": ("standing lookup, p95 (ms)", "flat"),
    "fan-out, end to end seconds": ("fan-out to every member (s)", "batch"),
}
BATCH_SLOPE, FLAT_SLOPE = 1.1, 0.2


def seconds_or_ms(value: str) -> float:
    """The first number of a recorded value ("91.8 s = 3.78× floor", "p95 26 ms", "1,234 messages/s")."""
    found = re.search(r"(\d[\d,]*\.?\d*)", re.sub(r"^p\d+\s+", "", value))
    return float(found.group(1).replace(",", "")) if found else float("nan")


def standing_only() -> None:
    """This process measures the standing lookup on DATABASE_URL and records it."""
    django_setup()
    import random

    from api.standing import member_read, standing_of
    from crm.models import Member

    highest = Member.objects.order_by("-id").values_list("id", flat=True).first()
    rng = random.Random(7)
    ids = [rng.randint(1, highest) for _ in range(220)]
    external = dict(Member.objects.filter(pk__in=ids).values_list("pk", "external_id"))
    times = []
    for n, pk in enumerate(ids):
        if pk not in external:
            continue
        started = time.perf_counter()
        read = member_read(external[pk])
        if read is not None:
            standing_of(read)
        if n >= 20:  # the first ones warm the process's caches
            times.append((time.perf_counter() - started) * 1000)
    times.sort()
    record("standing lookup p95", f"{percentile(times, 0.95):.1f} ms", against=f"p50 {percentile(times, 0.5):.1f} ms, {len(times)} lookups")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--reuse", action="store_true", help="keep a size's database when it exists (crm_bench for 1M)")
    parser.add_argument("--as-of", type=dt.date.fromisoformat, default=dt.date.today())
    parser.add_argument("--standing-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.standing_only:
        standing_only()
        return
    OUT.mkdir(parents=True, exist_ok=True)
    results: dict[int, dict[str, float]] = {}
    for size in args.sizes:
        results[size] = measure(size, args)
        print(f"{size:,} members: {json.dumps(results[size], ensure_ascii=False)}", flush=True)
    table = render(results)
    (OUT / "scale.md").write_text(table)
    (OUT / "scale.svg").write_text(chart(results))
    print()
    print(table)
    print(f"chart: {OUT / 'scale.svg'}")


def measure(size: int, args) -> dict[str, float]:
    name = "crm_bench" if size == 1_000_000 and args.reuse else f"crm_scale_{size}"
    env = bench_env(name)
    figures = OUT / f"scale_{size}.jsonl"
    figures.write_text("")
    env["BENCH_FIGURES"] = str(figures)
    log = open(OUT / f"scale_{size}.txt", "w")

    def step(what: str, command: list[str]) -> None:
        began = time.monotonic()
        print(f"  {size:,}: {what}", flush=True)
        code = subprocess.run(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
        if code:
            raise SystemExit(f"{what} failed at {size:,} members (exit {code}): see {OUT / f'scale_{size}.txt'}")
        print(f"    {time.monotonic() - began:.0f} s", flush=True)

    if not (args.reuse and database_exists(name)):
        database_made_again(name)
        for what, command in seed_steps(size, args.as_of.isoformat()):
            step(what, command)
    step("vacuum", vacuum_command())
    step("recompute bench", [PYTHON, "bench/recompute.py", "--as-of", args.as_of.isoformat()])
    step("admin pages", [PYTHON, "bench/admin_latency.py", "--repeat", "10"])
    step("standing lookups", [PYTHON, "bench/scale.py", "--standing-only"])
    step("fan-out", [PYTHON, "bench/fanout.py"])
    log.close()

    rows = [json.loads(line) for line in figures.read_text().splitlines()]
    found = {row["figure"]: seconds_or_ms(row["value"]) for row in rows}
    pages = sorted(value for figure, value in found.items() if figure.startswith("admin, one request at a time:"))
    rate = found.get("fan-out, end to end (file sink)")
    measured = {
        **{figure: found[figure] for figure in FIGURES if figure in found},
        "admin pages, worst p95": pages[-1] if pages else float("nan"),
        "admin pages, median p95": pages[len(pages) // 2] if pages else float("nan"),
        # The fan-out's figure is a rate, from launch to the last message; its cost is the time to reach everyone.
        "fan-out, end to end seconds": size / rate if rate else float("nan"),
    }
    return measured


def slope(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of log(cost) on log(members)."""
    usable = [(math.log(x), math.log(y)) for x, y in points if y and y > 0 and not math.isnan(y)]
    if len(usable) < 2:
        return float("nan")
    mean_x = sum(x for x, _ in usable) / len(usable)
    mean_y = sum(y for _, y in usable) / len(usable)
    return sum((x - mean_x) * (y - mean_y) for x, y in usable) / sum((x - mean_x) ** 2 for x, _ in usable)


def render(results: dict[int, dict[str, float]]) -> str:
    sizes = sorted(results)
    lines = [
        f"bench/scale.py on {dt.date.today()}: slope of log(cost) on log(members); batch work ≤ {BATCH_SLOPE}, pages and lookups ≤ {FLAT_SLOPE}",
        "",
        "| figure | " + " | ".join(f"{size:,}" for size in sizes) + " | slope | verdict |",
        "|---|" + "---|" * len(sizes) + "---|---|",
    ]
    for figure, (label, kind) in FIGURES.items():
        points = [(size, results[size].get(figure, float("nan"))) for size in sizes]
        value = slope(points)
        limit = BATCH_SLOPE if kind == "batch" else FLAT_SLOPE
        verdict = "" if math.isnan(value) else ("met" if value <= limit else "**missed**")
        cells = " | ".join("—" if math.isnan(cost) else f"{cost:,.1f}" for _, cost in points)
        lines.append(f"| {label} | {cells} | {value:.2f} | {verdict} |")
    return "\n".join(lines) + "\n"


def chart(results: dict[int, dict[str, float]], width: int = 640, height: int = 400) -> str:
    """Each figure relative to its value at the smallest size, on log-log axes, with the linear line for reference."""
    sizes = sorted(results)
    left, right, top, bottom = 60, 220, 20, 50
    span_x = math.log(sizes[-1] / sizes[0]) or 1.0
    ratios = [results[s].get(f, float("nan")) / results[sizes[0]].get(f, float("nan")) for s in sizes for f in FIGURES]
    high = max([r for r in ratios if r > 0 and not math.isnan(r)] + [sizes[-1] / sizes[0]])
    low = min([r for r in ratios if r > 0 and not math.isnan(r)] + [1.0])
    span_y = math.log(high / low) or 1.0

    def x(size: float) -> float:
        return left + (width - left - right) * math.log(size / sizes[0]) / span_x

    def y(ratio: float) -> float:
        return height - bottom - (height - top - bottom) * math.log(ratio / low) / span_y

    colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="black"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="black"/>',
        f'<text x="{(left + width - right) / 2}" y="{height - 12}" text-anchor="middle">members (log scale)</text>',
        f'<text x="14" y="{(top + height - bottom) / 2}" transform="rotate(-90 14 {(top + height - bottom) / 2})" text-anchor="middle">'
        f"cost ÷ cost at {sizes[0]:,} (log scale)</text>",
        f'<line x1="{x(sizes[0]):.1f}" y1="{y(1):.1f}" x2="{x(sizes[-1]):.1f}" y2="{y(sizes[-1] / sizes[0]):.1f}" stroke="#999" stroke-dasharray="4 3"/>',
        f'<text x="{x(sizes[-1]) + 4:.1f}" y="{y(sizes[-1] / sizes[0]):.1f}" fill="#666">linear</text>',
    ]
    for size in sizes:
        parts.append(f'<text x="{x(size):.1f}" y="{height - bottom + 16}" text-anchor="middle">{size:,}</text>')
    for ratio in (0.3, 0.5, 1, 2, 3, 5, 10, 20, 30, 50):
        if low <= ratio <= high:
            parts.append(f'<text x="{left - 6}" y="{y(ratio) + 4:.1f}" text-anchor="end">{ratio:g}×</text>')
            parts.append(f'<line x1="{left}" y1="{y(ratio):.1f}" x2="{width - right}" y2="{y(ratio):.1f}" stroke="#eee"/>')
    for n, (figure, (label, _kind)) in enumerate(FIGURES.items()):
        base = results[sizes[0]].get(figure, float("nan"))
        points = [(x(s), y(results[s][figure] / base)) for s in sizes if base > 0 and results[s].get(figure, 0) > 0]
        if len(points) < 2:
            continue
        colour = colours[n % len(colours)]
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(f"{px:.1f},{py:.1f}" for px, py in points)}"/>')
        parts.append(f'<rect x="{width - right + 10}" y="{top + 16 * n}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{width - right + 24}" y="{top + 16 * n + 9}">{label}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    main()
