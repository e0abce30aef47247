"""Federated episodes across hospitals, on Flower: ``federated server|site|app|simulate``.

A deployment is Flower's: the coordinating site runs ``brainlesioncl federated server`` (a Flower SuperLink), each
hospital runs ``brainlesioncl federated site --cases ...`` (a Flower SuperNode whose ``node-config`` names its cases,
which never leave it), and the coordinator writes the episode's Flower App with ``brainlesioncl federated app DIR``
and starts it with ``flwr run DIR``. The new version is written into the coordinator's registry. ``simulate`` runs
every site in this process, one after the other, through Flower's Grid interface: a study's dry run, benchmarks
and tests on one machine. (Flower's Ray simulation runtime took about 4 minutes for one round of two tiny sites on
2 cores, and Flower deprecates its ``run_simulation`` entry point, so ``simulate`` does not use it.)

Needs the optional extra: ``pip install brainlesioncl[federated]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from ..errors import SettingsError
from .common import STRATEGY_NAMES, parse_options, progress_printer, registry_of

__all__ = ["register"]

#: What ``federated --help`` says (the module docstring is for developers).
USER_DESCRIPTION = """An episode trained by several hospitals at once, on Flower; no image leaves a site.

The coordinating site runs 'brainlesioncl federated server' (a Flower SuperLink). Each hospital runs
'brainlesioncl federated site --cases FOLDER' (a Flower SuperNode: its cases stay on its computer; only weights,
counts and metrics are sent). The coordinator writes the episode's Flower App with 'brainlesioncl federated app DIR'
and starts it with 'flwr run DIR'; the new version is written into the coordinator's registry. 'simulate' runs every
site in this process: a study's dry run. See docs/FEDERATED.md. Needs the federated extra (from a clone:
pip install -e '.[federated]')."""

FLOWER_MISSING = ("Federated episodes need Flower: pip install -e '.[federated]' in a clone of BrainLesionCL "
                  "(pip install 'brainlesioncl[federated]' from a package index), in this environment.")
#: Flower's default ports: SuperNodes connect to the Fleet API, ``flwr run`` to the Control API, the ServerApp to the
#: ServerAppIo API. ``federated server`` listens on loopback unless told otherwise.
FLEET_ADDRESS, CONTROL_ADDRESS, SERVERAPPIO_ADDRESS = "127.0.0.1:9092", "127.0.0.1:9093", "127.0.0.1:9091"


def _settings_options() -> argparse.ArgumentParser:
    """The federation's settings, spelled as the run config keys of the Flower App."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--parent", required=True, help="version every site starts from (each site must hold it)")
    parent.add_argument("--disease", required=True, help="the disease the sites' cases show")
    parent.add_argument("--rounds", type=int, default=5, help="federated rounds (each: local training, then averaging)")
    parent.add_argument("--local-steps", type=int, default=20, help="optimiser steps per site per round")
    parent.add_argument("--learning-rate", type=float, default=5e-4, help="the sites' Adam learning rate")
    parent.add_argument("--schedule", choices=["cosine", "constant"], default="cosine",
                        help="learning rate over the rounds")
    parent.add_argument("--aggregation", choices=["fedavg", "fedprox", "fedavgm"], default="fedavg",
                        help="fedavg (weighted by cases), fedprox (for sites with very different data) or fedavgm "
                             "(fedavg with server momentum: the rounds' moves add up; see docs/FEDERATED.md)")
    parent.add_argument("--proximal-mu", type=float, default=0.01, help="FedProx's mu")
    parent.add_argument("--server-momentum", type=float, default=0.5,
                        help="FedAvgM's momentum beta, in [0, 1); higher learns the new disease faster and forgets "
                             "more (0.9 forgot on our benchmark)")
    parent.add_argument("--server-learning-rate", type=float, default=1.0, help="FedAvgM's server learning rate")
    parent.add_argument("--min-sites", type=int, default=2,
                        help="fewest sites a round must aggregate; fewer fails the episode (no version written)")
    parent.add_argument("--strategy", default="ours", choices=STRATEGY_NAMES[:-1],
                        help="continual-learning strategy each site trains with (default: ours)")
    parent.add_argument("--option", action="append", help="strategy hyper-parameter NAME=VALUE, repeatable")
    parent.add_argument("--crop-size", type=int, default=64, help="edge of the cubic training crops, in voxels")
    parent.add_argument("--batch-size", type=int, default=2, help="crops per training step")
    parent.add_argument("--seed", type=int, default=0, help="random seed")
    parent.add_argument("--dp-clip", type=float, help="differential privacy: clip each site's update to this L2 norm")
    parent.add_argument("--dp-noise", type=float, default=0.0,
                        help="differential privacy: Gaussian noise multiplier on the aggregate (needs --dp-clip)")
    parent.add_argument("--name", help="model name of the new version (default: the parent's)")
    parent.add_argument("--round-timeout", type=float, default=3600.0,
                        help="seconds to wait for the sites in a round; a site that has not answered is dropped")
    return parent


def _tls_options(parser: argparse.ArgumentParser, *, server: bool) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--insecure", action="store_true",
                       help="no TLS (only on a trusted network or for a test on one machine)")
    if server:
        group.add_argument("--certificates", nargs=3, metavar=("CA_CERT", "SERVER_CERT", "SERVER_KEY"),
                           help="TLS: the operator's CA certificate, this server's certificate and private key")
    else:
        group.add_argument("--root-certificates", metavar="CA_CERT",
                           help="TLS: the CA certificate that signed the server's certificate")


def register(sub: argparse._SubParsersAction, *, progress: argparse.ArgumentParser,
             device: argparse.ArgumentParser) -> None:
    fed = sub.add_parser("federated", help="an episode trained by several hospitals at once (Flower); no image "
                                           "leaves a site", description=USER_DESCRIPTION,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = fed.add_subparsers(dest="federated_command", required=True)
    settings = _settings_options()

    server = commands.add_parser("server", help="run the coordinator's Flower SuperLink (until stopped)")
    _tls_options(server, server=True)
    server.add_argument("--fleet-api-address", default=FLEET_ADDRESS,
                        help="where the sites connect (HOST:PORT); give the interface the hospitals reach, e.g. "
                             "0.0.0.0:9092, only with TLS")
    server.add_argument("--control-api-address", default=CONTROL_ADDRESS,
                        help="where `flwr run` connects (keep it on loopback or the coordinator's network)")
    server.add_argument("--serverappio-api-address", default=SERVERAPPIO_ADDRESS,
                        help="where the episode's ServerApp connects (this machine)")
    server.add_argument("--allow-insecure-network", action="store_true",
                        help="allow --insecure on an address other than loopback (unencrypted weights on a network: "
                             "only a test network you control)")
    server.add_argument("--database", help="SuperLink state file (default: in memory)")
    server.set_defaults(func=cmd_server)

    site = commands.add_parser("site", help="join as a hospital: a Flower SuperNode training on local cases",
                               parents=[progress, device])
    site.add_argument("--cases", required=True, help="folder or CSV/JSON manifest of this site's annotated cases")
    site.add_argument("--superlink", default=FLEET_ADDRESS, help=f"server address (default {FLEET_ADDRESS})")
    site.add_argument("--label", help="this site's name in the server's log (default: site-<n>)")
    site.add_argument("--audit-dir", help="keep a copy of everything this site sends, round by round")
    site.add_argument("--prepare", choices=["auto", "on", "off"], default="auto",
                      help="raw annotated exams are brain-extracted and co-registered first (as segment --prepare)")
    site.add_argument("--label-mapping", choices=["strict", "nonzero"], default="strict",
                      help="strict: labels are 0/1; nonzero: every nonzero value is lesion (BraTS 1/2/4)")
    site.add_argument("--clientappio-address", default="127.0.0.1:9094",
                      help="local port Flower uses between this SuperNode and its training process (one per site "
                           "on a machine)")
    _tls_options(site, server=False)
    site.set_defaults(func=cmd_site)

    app = commands.add_parser("app", help="write the episode's Flower App (then: flwr run DIR)",
                              parents=[settings])
    app.add_argument("folder", help="where to write it (created)")
    app.add_argument("--control", default=CONTROL_ADDRESS,
                     help=f"the SuperLink's Control API address for flwr run (default {CONTROL_ADDRESS})")
    app.add_argument("--root-certificates", help="TLS: the CA certificate of the SuperLink (default: insecure)")
    app.set_defaults(func=cmd_app)

    sim = commands.add_parser("simulate", help="every site in this process: a dry run, benchmarks, tests",
                              parents=[settings, progress, device])
    sim.add_argument("--site", action="append", required=True, metavar="[LABEL=]CASES",
                     help="one site's annotated cases (folder or manifest), repeatable")
    sim.add_argument("--prepare", choices=["auto", "on", "off"], default="auto",
                     help="raw annotated exams are brain-extracted and co-registered first (as segment --prepare)")
    sim.add_argument("--label-mapping", choices=["strict", "nonzero"], default="strict",
                     help="nonzero: every nonzero label value is lesion (multi-class labels such as BraTS 1/2/4)")
    sim.add_argument("--audit-dir", help="keep a copy of every site's replies under AUDIT_DIR/<site>")
    sim.add_argument("--activate", action="store_true", help="activate the new version when done")
    sim.set_defaults(func=cmd_simulate)


# ----------------------------------------------------------------------------------------------------------- helpers
def _federation_settings(args: argparse.Namespace):
    from ..federated import FederationSettings

    return FederationSettings(
        parent=args.parent, disease=args.disease, rounds=args.rounds, local_steps=args.local_steps,
        learning_rate=args.learning_rate, schedule=args.schedule, aggregation=args.aggregation,
        proximal_mu=args.proximal_mu, server_momentum=args.server_momentum,
        server_learning_rate=args.server_learning_rate, min_sites=args.min_sites, strategy=args.strategy,
        strategy_options=parse_options(args.option or []), crop_size=args.crop_size, batch_size=args.batch_size,
        seed=args.seed, dp_clip=args.dp_clip, dp_noise=args.dp_noise, name=args.name,
        round_timeout=args.round_timeout,
    )


def _flower_command(name: str) -> str:
    """A Flower tool of this installation (beside this interpreter, whatever ``PATH`` says), else from ``PATH``."""
    beside = Path(sys.executable).with_name(name)
    path = str(beside) if beside.exists() else shutil.which(name)
    if path is None:
        raise SettingsError(FLOWER_MISSING)
    return path


def _run_flower(command: list[str], status: Path | None = None, printer=None) -> int:
    """Run a Flower process until it stops. Ctrl+C or SIGTERM (a parent such as Slicer cancelling) stop it too, so
    no SuperNode outlives the command. With ``status``, the site's status file becomes progress lines."""
    import signal
    import subprocess
    import time

    print("$ " + " ".join(command), file=sys.stderr if printer else sys.stdout, flush=True)
    if printer is not None:
        printer(0.0, "waiting for the server's first round")

    def stop(_signum, _frame) -> None:
        raise KeyboardInterrupt

    from ..federated.environment import flower_environment

    previous = signal.signal(signal.SIGTERM, stop)
    process = subprocess.Popen(command, stdout=sys.stderr if printer else None, stderr=subprocess.STDOUT,
                               env=flower_environment())
    seen = None
    try:
        while process.poll() is None:
            time.sleep(1.0 if status is not None else 0.2)
            if status is None or printer is None:
                continue
            try:
                record = json.loads(status.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            key = (record.get("round"), record.get("kind"))
            if key == seen:
                continue
            seen = key
            metrics, rounds = record.get("metrics", {}), max(int(record.get("rounds") or 1), 1)
            detail = (f"loss {metrics['loss']:.4f}" if "loss" in metrics else
                      f"validation Dice {metrics.get('dice', 0.0):.3f}")
            printer(min(int(record["round"]) / rounds, 1.0),
                    f"round {record['round']}/{rounds}: {record['kind']} reply sent ({detail})")
        return process.returncode
    except KeyboardInterrupt:
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def _toml(value: Any) -> str:
    """A TOML/node-config value: numbers as numbers, text in double quotes with escapes."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))


def round_progress(settings, printer):
    """The per-round line of the progress display: round, sites, loss, mean validation Dice."""
    def report(record) -> None:
        if printer is None:
            return
        loss = "-" if record.loss is None else f"{record.loss:.4f}"
        dice = "-" if record.dice is None else f"{record.dice:.3f}"
        failed = f", {len(record.failures)} failed ({'; '.join(record.failures)})" if record.failures else ""
        norms = sorted(record.update_norms.values())
        norm = f", median update norm {norms[len(norms) // 2]:.3g}" if norms else ""
        printer(record.round / settings.rounds, f"round {record.round}/{settings.rounds}: {record.sites} sites"
                f"{failed}, loss {loss}, validation Dice {dice}{norm}")

    return report


# ---------------------------------------------------------------------------------------------------------- commands
def is_loopback(address: str) -> bool:
    """Whether HOST:PORT names this machine only (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    host = address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def server_command(args: argparse.Namespace) -> list[str]:
    """The SuperLink's command line: the listen addresses given (loopback by default), TLS or an allowed --insecure.

    Raises:
        SettingsError: --insecure on an address other than loopback without --allow-insecure-network.
    """
    addresses = {"--fleet-api-address": args.fleet_api_address, "--control-api-address": args.control_api_address,
                 "--serverappio-api-address": args.serverappio_api_address}
    for option, address in addresses.items():
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise SettingsError(f"{option} {address!r} must look like HOST:PORT, e.g. 127.0.0.1:9092.")
    exposed = [f"{option} {address}" for option, address in addresses.items() if not is_loopback(address)]
    if args.insecure and exposed and not args.allow_insecure_network:
        raise SettingsError(
            f"--insecure with {', '.join(exposed)}: the weights would cross the network unencrypted. Give TLS "
            "certificates (--certificates CA_CERT SERVER_CERT SERVER_KEY, see docs/FEDERATED.md), keep the addresses "
            "on 127.0.0.1, or confirm a test network you control with --allow-insecure-network.")
    command = [_flower_command("flower-superlink")]
    for option, address in addresses.items():
        command += [option, address]
    if args.insecure:
        command.append("--insecure")
    else:
        ca, cert, key = args.certificates
        command += ["--ssl-ca-certfile", ca, "--ssl-certfile", cert, "--ssl-keyfile", key]
    if args.database:
        command += ["--database", args.database]
    return command


def cmd_server(args: argparse.Namespace) -> int:
    return _run_flower(server_command(args))


def cmd_site(args: argparse.Namespace) -> int:
    from ..federated.site import check_site_cases

    cases = Path(args.cases).resolve()
    if not cases.exists():
        raise SettingsError(f"--cases {args.cases}: no such folder or manifest.")
    count = check_site_cases(cases)  # before joining: a round later, the error could only be a code
    print(f"site {args.label or '(unnamed)'}: {count} annotated case(s) found and readable; joining "
          f"{args.superlink}.", file=sys.stderr, flush=True)
    node = {"cases": str(cases), "device": args.device, "prepare": args.prepare, "label-mapping": args.label_mapping}
    if args.registry:
        node["registry"] = str(Path(args.registry).resolve())
    if args.label:
        node["label"] = args.label
    if args.audit_dir:
        node["audit"] = str(Path(args.audit_dir).resolve())
    printer = progress_printer(args.progress)
    status_dir = None
    if printer is not None:  # the site's training runs in Flower's processes; it reports through a status file
        import tempfile

        status_dir = Path(tempfile.mkdtemp(prefix="brainlesioncl-site-"))
        node["status"] = str(status_dir / "status.json")
    command = [_flower_command("flower-supernode"), "--superlink", args.superlink,
               "--clientappio-api-address", args.clientappio_address,
               "--node-config", " ".join(f"{k}={_toml(v)}" for k, v in node.items())]
    command += ["--insecure"] if args.insecure else ["--root-certificates", args.root_certificates]
    if printer is None or status_dir is None:
        return _run_flower(command)
    try:
        return _run_flower(command, Path(node["status"]), printer)
    finally:
        shutil.rmtree(status_dir, ignore_errors=True)


def write_flower_app(folder: Path, settings, *, registry: str | None, control: str,
                     root_certificates: str | None) -> Path:
    """The Flower App of one federated episode: BrainLesionCL's components and the settings as its run config."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {key.replace("_", "-"): value for key, value in settings.to_dict().items()}
    config["strategy-options"] = json.dumps(config["strategy-options"])
    config["dp-clip"] = config["dp-clip"] or 0.0  # run configs have no null: 0 means off
    config["name"] = config["name"] or ""
    if registry:
        config["registry"] = registry
    lines = [
        "# A BrainLesionCL federated episode as a Flower App. Start it with: flwr run <this folder> hospitals --stream",
        "# Written by `brainlesioncl federated app`; the settings below are the episode's (see docs/FEDERATED.md).",
        "[build-system]", 'requires = ["hatchling"]', 'build-backend = "hatchling.build"', "",
        "[project]", 'name = "brainlesioncl-federated-episode"', 'version = "1.0.0"', "dependencies = []", "",
        "[tool.hatch.build.targets.wheel]", 'packages = ["."]', "",
        "[tool.flwr.app]", 'publisher = "brainlesioncl"', "",
        "[tool.flwr.app.components]", 'serverapp = "brainlesioncl.federated.deployment:server_app"',
        'clientapp = "brainlesioncl.federated.deployment:client_app"', "",
        "[tool.flwr.app.config]", *[f"{key} = {_toml(value)}" for key, value in config.items()], "",
        "[tool.flwr.federations]", 'default = "hospitals"', "",
        "[tool.flwr.federations.hospitals]", f"address = {_toml(control)}",
        *([f"root-certificates = {_toml(root_certificates)}"] if root_certificates else ["insecure = true"]), "",
    ]
    target = folder / "pyproject.toml"
    partial = folder / "pyproject.toml.partial"
    partial.write_text("\n".join(lines), encoding="utf-8")
    partial.replace(target)
    return target


def cmd_app(args: argparse.Namespace) -> int:
    settings = _federation_settings(args)
    registry = str(Path(args.registry).resolve()) if args.registry else None
    registry_of(args).get(settings.parent)  # the coordinator must hold the parent too: fail here, not mid-run
    target = write_flower_app(Path(args.folder), settings, registry=registry, control=args.control,
                              root_certificates=args.root_certificates)
    print(f"Wrote {target}. Start the episode with:\n  flwr run {Path(args.folder)} hospitals --stream")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    try:
        from ..federated.flower_apps import SequentialGrid, build_client_app, run_federation
    except ImportError as err:
        raise SettingsError(FLOWER_MISSING) from err
    from ..federated import FederatedServer, FederatedSite

    if not args.verbose:  # Flower logs every message at INFO; the progress line says what matters
        import logging

        logging.getLogger("flwr").setLevel(logging.WARNING)
    settings = _federation_settings(args)
    registry = registry_of(args)
    sites: list[tuple[str, str]] = []
    for number, spec in enumerate(args.site, 1):
        label, sep, cases = spec.partition("=")
        label, cases = (label, cases) if sep and not os.path.exists(spec) else (f"site-{number}", spec)
        sites.append((label, cases))
    if len({label for label, _ in sites}) != len(sites):
        raise SettingsError("--site labels must differ (each site is named once in the log).")
    printer = progress_printer(args.progress)
    server = FederatedServer(settings, registry=registry, progress=round_progress(settings, printer))

    def open_site(context, site_settings) -> FederatedSite:
        label, cases = sites[int(context.node_config["partition-id"])]
        audit = Path(args.audit_dir) / label if args.audit_dir else None
        return FederatedSite.open(cases, site_settings, registry=registry, device=args.device, label=label,
                                  audit_dir=audit, prepare=args.prepare, label_mapping=args.label_mapping)

    grid = SequentialGrid(build_client_app(open_site), [{"partition-id": i, "label": label}
                                                        for i, (label, _cases) in enumerate(sites)])
    version = run_federation(server, grid)
    if args.activate:
        registry.activate(version)
    history = registry.get(version).metadata.training["federated"]["history"]
    summary = {"version": version, "parent": settings.parent, "sites": len(sites),
               "final_validation_dice": history[-1]["dice"], "activated": bool(args.activate)}
    print(json.dumps(summary) if args.progress == "json" else
          f"New version {version} (parent {settings.parent}) from {len(sites)} sites; validation Dice "
          f"{summary['final_validation_dice']}.")
    return 0
