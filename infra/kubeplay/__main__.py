"""``python -m infra.kubeplay [--tag ci] [--redis-db N]``: play the rendered suite and print the report."""

from __future__ import annotations

import argparse
import json
import sys

from infra.kubeplay import pods, transform


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", default="ci")
    parser.add_argument("--redis-db", type=int, default=15)
    args = parser.parse_args(argv)
    print("transformations of the rendered objects:\n" + transform.describe())
    try:
        report = pods.run(args.tag, args.redis_db)
    except AssertionError as exc:
        print(f"kube play FAILED: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
