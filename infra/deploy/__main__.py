"""``python -m infra.deploy render|install``: the chart through Helm's engine, no helm binary.

render   render + strict lint + Kubernetes schema validation for each ci/*-values.yaml
         (or the -f files given); --out DIR writes the manifests
install  helm upgrade --install the chart into the current kube context, wait for rollouts,
         print pod status, and run `helm test`
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import helm_python as helm
import yaml

from infra.deploy import chart


def cmd_render(args: argparse.Namespace) -> int:
    sets = [Path(f) for f in args.values] or chart.ci_values_files()
    groups = [[p] for p in sets] if not args.values else [sets]
    failed = False
    for files in groups:
        label = "+".join(p.name for p in files)
        values = chart.load_values(files)
        try:
            rendered = chart.render(values, release=args.release, namespace=args.namespace)
        except helm.HelmError as exc:
            print(f"FAIL {label}: {exc}")
            failed = True
            continue
        problems = chart.lint(values) + chart.validate(rendered)
        for problem in problems:
            print(f"  {problem}")
        status = "FAIL" if problems else "ok"
        print(f"{status:<4} {label}: {len(rendered.objects)} objects, Kubernetes {chart.KUBE_VERSION} schemas (strict)")
        failed |= bool(problems)
        if args.out:
            out = Path(args.out) / f"{files[-1].stem}.yaml"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(yaml.safe_dump_all(rendered.objects, sort_keys=False))
            print(f"     wrote {out}")
    return 1 if failed else 0


def cmd_install(args: argparse.Namespace) -> int:
    from infra.deploy import rollout

    files = [Path(f) for f in args.values] or [chart.CI_VALUES_DIR / "kind-values.yaml"]
    values = chart.load_values(files)
    with (
        helm.Config(kubeconfig_path=args.kubeconfig, kube_context=args.context, namespace=args.namespace) as cfg,
        helm.Chart.load(chart.CHART_DIR) as loaded,
    ):
        try:
            cfg.check_reachable()
        except helm.HelmKubeError as exc:
            print(f"install: the cluster is unreachable ({exc}); check the kube context")
            return 2
        try:
            cfg.status(args.release)
            exists = True
        except helm.HelmNotFoundError:
            exists = False
        if exists:
            print(f"upgrading {args.release} in {args.namespace}")
            cfg.upgrade(loaded, args.release, values, namespace=args.namespace, timeout=args.timeout)
        else:
            print(f"installing {args.release} in {args.namespace}")
            cfg.install(
                loaded, args.release, values, namespace=args.namespace, timeout=args.timeout, create_namespace=True
            )
        api = rollout.connect(args.context, args.kubeconfig)
        print(f"waiting for the rollouts of {args.release} (kubectl rollout status's rule)")
        ok = rollout.wait(lambda: rollout.fetch(api, args.namespace, args.release), timeout=args.timeout)
        rollout.print_pods(api, args.namespace, args.release)
        if not ok:
            print("rollout did not finish in time (see the pods above)")
            return 1
        if not args.skip_tests:
            result = cfg.test(args.release, timeout=args.timeout, logs=True)
            print(result.get("logs", "").strip() or "helm test passed")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.deploy", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("render", "install"):
        p = sub.add_parser(name)
        p.add_argument("-f", "--values", action="append", default=[], help="values file (repeatable)")
        p.add_argument("--release", default=chart.RELEASE)
        p.add_argument("--namespace", default=chart.NAMESPACE)
    sub.choices["render"].add_argument("--out", help="write the rendered manifests here")
    install = sub.choices["install"]
    install.add_argument("--context", help="kube context (default: the current one)")
    install.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)")
    install.add_argument("--timeout", type=int, default=600, help="seconds for install and rollout")
    install.add_argument("--skip-tests", action="store_true", help="do not run `helm test` afterwards")
    args = parser.parse_args(argv)
    return cmd_render(args) if args.command == "render" else cmd_install(args)


if __name__ == "__main__":
    sys.exit(main())
