"""`make bench`: run the scenarios, print a markdown table, write bench/RESULTS.md.

    python -m bench                      # every scenario
    python -m bench latency small        # some of them
    python -m bench --memory-size 256M   # a smaller layer for the memory scenario
    python -m bench sites                # one engine against engines apart (root: a site)
    python -m bench wan                  # a shaped WAN link (50 ms, 100 Mbit/s) vs loopback

Figures and ratios in one table are measured side by side in the same run, on the same
machine, against the same primary.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import platform
import sys
import time
import uuid
from pathlib import Path

from bench.compare import AUTH_OFF, OFF_LABEL, in_turns, on_against_off
from bench.harness import BenchProject, bench_project
from bench.measures import Row
from bench.replication import memory
from bench.scenarios import NAMES, OWN_PROJECTS, SCENARIOS, SIDE_BY_SIDE

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def _size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(text[:-1]) * units[text[-1].upper()] if text[-1].upper() in units else int(text)


def machine() -> str:
    memory_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    return (
        f"{os.cpu_count()} cores, {memory_kib / (1 << 20):.0f} GiB, "
        f"{platform.system()} {platform.machine()}, Python {platform.python_version()}"
    )


def table(rows: list[Row]) -> str:
    lines = [
        "| scenario | measure | gdk-geo | baseline | ratio | target | met |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r.scenario} | {r.measure} | {r.ours} | {r.baseline} | {r.ratio} | "
        f"{r.target} | {r.verdict} |"
        for r in rows
    ]
    return "\n".join(lines)


BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def write_results(report: str) -> None:
    """Replace the latest run in RESULTS.md, keeping the hand-written history around it."""
    empty = f"# gdk-geo benchmarks\n\n{BEGIN}\n{END}\n"
    text = RESULTS.read_text() if RESULTS.exists() else empty
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    RESULTS.write_text(f"{head}{BEGIN}\n{report}{END}{tail}")


RUN = uuid.uuid4().hex[:6]  # containers of this run only: two runs on one engine collided


def _measure(
    name: str, index: int, benches: list[BenchProject], labels: list[str], memory_size: int
) -> list[list[Row]]:
    """Each project's rows of scenario `name`, the projects' samples interleaved where
    the scenario can do that, else one project after the other, which goes first
    alternating over the run's scenarios."""
    if len(benches) > 1 and name in SIDE_BY_SIDE:
        print(f"running {name}, projects in turns …", file=sys.stderr, flush=True)
        return SIDE_BY_SIDE[name](benches)
    scenario = SCENARIOS[name]

    def measure(bench: BenchProject) -> list[Row]:
        return memory(bench, memory_size) if scenario is memory else scenario(bench)

    def started(k: int) -> None:
        print(f"running {name}{labels[k]} …", file=sys.stderr, flush=True)

    return in_turns(measure, benches, index, started)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("scenarios", nargs="*", help=f"any of: {', '.join(NAMES)}")
    parser.add_argument("--memory-size", type=_size, default=2 << 30)
    parser.add_argument("--no-write", action="store_true", help="don't update RESULTS.md")
    parser.add_argument(
        "--compare-auth",
        action="store_true",
        help="also measure each scenario on a project with registry.auth_enabled: false, side by "
        "side, and judge auth on ÷ off against ≤ 1.1×",
    )
    args = parser.parse_args()
    unknown = set(args.scenarios) - set(NAMES)
    if unknown:
        parser.error(
            f"unknown scenario(s) {', '.join(sorted(unknown))}; pick from {', '.join(NAMES)}"
        )
    chosen = args.scenarios or NAMES
    # (gdk.yml additions, container prefix, label) of each project the run compares
    settings = [("", f"gdkgeo-bench-{RUN}", "")]
    if args.compare_auth:
        settings.append((AUTH_OFF, f"gdkgeo-bench-{RUN}-noauth", OFF_LABEL))
    labels = [label for _, _, label in settings]
    rows: list[Row] = []
    with contextlib.ExitStack() as stack:
        benches: list[BenchProject] = []

        def projects() -> list[BenchProject]:
            """The run's projects, set up when a scenario first needs them."""
            if not benches:
                benches.extend(
                    stack.enter_context(bench_project(extra, prefix))
                    for extra, prefix, _ in settings
                )
            return benches

        for index, name in enumerate(chosen):
            if name in OWN_PROJECTS:
                print(f"running {name} …", file=sys.stderr, flush=True)
                each = [OWN_PROJECTS[name](extra, prefix) for extra, prefix, _ in settings]
            else:
                each = _measure(name, index, projects(), labels, args.memory_size)
            found = [
                dataclasses.replace(row, scenario=row.scenario + label)
                for label, project_rows in zip(labels, each, strict=True)
                for row in project_rows
            ]
            if args.compare_auth:
                found += on_against_off(*each)
            # now, not only after the projects are destroyed (minutes, at 5,000 repos)
            print(table(found), file=sys.stderr, flush=True)
            rows += found
    report = (
        f"Run on {time.strftime('%Y-%m-%d %H:%M %Z')}, {machine()}, with `make bench` "
        f"(scenarios: {', '.join(chosen)}).\n\n{table(rows)}\n"
    )
    print(report)
    if not args.no_write:
        write_results(report)
    return 0 if all(r.met is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
