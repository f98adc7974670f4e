"""`python -m bench` (or `make bench`): cold imports from the `sam build` output, then DynamoDB Local + moto for
the warm handler and reply benchmarks; prints tables, exits 0.

    python -m bench [--iterations 300] [--warmup 30] [--import-runs 9] [--no-build] [--profile]

The goals are reported as PASS/MISS, never asserted: this is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import subprocess
import sys

from bench.common import ROOT, local_stack, quiet_stdout, table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--import-runs", type=int, default=9, help="fresh interpreters per cold import")
    parser.add_argument("--no-build", action="store_true", help="reuse .aws-sam/build instead of running sam build")
    parser.add_argument("--skip-coldstart", action="store_true", help="no sam build, no cold imports")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of the warm Meta handler")
    parser.add_argument("--skip-reply", action="store_true", help="only the webhook benchmarks")
    parser.add_argument("--skip-cost", action="store_true", help="skip the cost of 1M messages (bench/cost.py)")
    parser.add_argument("--skip-batch", action="store_true", help="skip the 1,000-event batch (bench/batch.py)")
    parser.add_argument(
        "--skip-conversation",
        action="store_true",
        help="skip the table calls along a 200-message conversation (bench/conversation.py)",
    )
    args = parser.parse_args(argv)

    if not args.skip_coldstart:
        from bench import coldstart

        coldstart.run(args.import_runs, build=not args.no_build)
    print("\nstarting DynamoDB Local and moto ...", flush=True)
    with local_stack() as stack:
        from bench import webhook  # after local_stack: the handler's imports read the environment

        with quiet_stdout():
            rows = webhook.handler_rows(stack, args.iterations, args.warmup)
        print(f"\n{args.iterations} measured calls after {args.warmup} warm-up. ratio = median / floor median.\n")
        print(table(rows))
        print("\nfloor: a bare conditional PutItem of a same-size item, fresh boto3 client.")
        if args.profile:
            profile(stack, args.iterations)
        if not args.skip_batch:
            batch_section(stack)
    if not args.skip_reply:
        print("\nreply pipeline (bench/reply.py) ...", flush=True)
        from bench import reply

        results = reply.main([])
        goals = [
            (
                "concurrent vs sequential, pipeline (in-memory ledger)",
                results["concurrency_pipeline_only"]["ratio"],
                ">=",
                10,
            ),
            ("concurrent vs sequential, DynamoDB Local in the loop", results["concurrency"]["ratio"], ">=", 10),
            (
                "sends/s, one page, pipeline (in-memory ledger)",
                results["throughput_pipeline_only"]["sends_per_s"],
                ">=",
                300,
            ),
            ("sends/s, one page, DynamoDB Local in the loop", results["throughput"]["sends_per_s"], ">=", 300),
            (
                "sends/s, lanes by full item key / batch floor, same process",
                results["lanes"]["ratio_to_floor"],
                ">=",
                1,
            ),
            ("replies out of the user's order, lanes by full item key", results["lanes"]["inversions"], "<=", 0),
            (
                "replies out of order, 2 child shards x lanes, newest first",
                results["lanes_split_newest_first"]["inversions"],
                "<=",
                0,
            ),
            (
                "messages answered twice or never, both lanes runs",
                sum(results[k]["duplicates"] + results[k]["unanswered"] for k in ("lanes", "lanes_split_newest_first")),
                "<=",
                0,
            ),
            ("table writes per answered message", results["table_calls_per_reply"]["writes"], "<=", 3),
            ("table reads per answered message", results["table_calls_per_reply"]["reads"], "<=", 1),
            ("Vonage JWT signatures per 1,000 sends", results["vonage_jwt"]["signatures"], "<=", 1),
            ("peak RSS MB", results["peak_rss_mb"], "<=", 150),
        ]
        for name, value, op, goal in goals:
            ok = value >= goal if op == ">=" else value <= goal
            print(f"{name:58} {value:>8} {op} {goal:<5} {'PASS' if ok else 'MISS'}")
        ceiling = results["dynamodb_local_ceiling"]
        print(
            f"\nDynamoDB Local alone ({ceiling['threads']} threads, bare claim puts): "
            f"{ceiling['calls_per_s']} calls/s, so at most {ceiling['sends_per_s_ceiling']} "
            f"answered messages/s at {ceiling['calls_per_reply']} table calls each."
        )
    if not args.skip_cost:
        # A fresh interpreter: the cost run counts what the handlers print, so it must import them itself.
        print("\ncost of 1M inbound messages answered once (bench/cost.py) ...", flush=True)
        subprocess.run([sys.executable, "-m", "bench.cost"], cwd=ROOT, check=False)
    if not args.skip_conversation:
        # A fresh interpreter too: it wraps botocore and loads the handlers under its meters.
        print("\ntable calls along one 200-message conversation (bench/conversation.py) ...", flush=True)
        subprocess.run([sys.executable, "-m", "bench.conversation"], cwd=ROOT, check=False)
    return 0


def batch_section(stack) -> None:
    from bench import batch

    print("\n1,000-event signed Meta batch through the webhook handler (bench/batch.py) ...", flush=True)
    with quiet_stdout():
        result = batch.run(stack)
    ok = result["batch_s"] <= 5
    print(
        f"batch end to end: {result['batch_s']} s (runs {result['batch_runs_s']}); 1,000 bare PutItems: "
        f"{result['floor_s']} s (runs {result['floor_runs_s']}); ratio {result['ratio']}"
    )
    print(
        f"{'1,000-event batch within 5 s (Meta expects an answer in 5 s)':58} {result['batch_s']:>8} <= 5     "
        f"{'PASS' if ok else 'MISS'}"
    )


def profile(stack, iterations: int) -> None:
    from bench import webhook

    profiler = cProfile.Profile()
    with quiet_stdout():
        profiler.enable()
        webhook.handler_rows(stack, iterations, warmup=10)
        profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(40)
    print(out.getvalue())


if __name__ == "__main__":
    sys.exit(main())
