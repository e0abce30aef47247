"""Federated episodes on Flower: the aggregate is the case-weighted mean of what the sites sent, a failing site sends
a code and never its own text, a dropped site fails the episode without a version and a restart resumes, FedProx and
DP do what they claim, and a real study on loopback (the server, three sites started by full path in a minimal
environment, ``flwr run``) produces the version the sites' own audit records predict and leaks nothing identifying."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import SimpleITK as sitk
import torch
from cl_helpers import blob_cases, write_cases

from brainlesioncl.continual import EpisodeConfig, train_episode
from brainlesioncl.errors import ChannelMappingError, SettingsError
from brainlesioncl.federated import FederatedServer, FederatedSite, FederationError, FederationSettings
from brainlesioncl.registry import ModelRegistry

from conftest import TINY_CHANNELS

flower = pytest.importorskip("brainlesioncl.federated.flower_apps",
                             reason="Flower is not installed: pip install 'brainlesioncl[federated]'")
SequentialGrid, build_client_app, run_federation = flower.SequentialGrid, flower.build_client_app, flower.run_federation

STATS_KEYS = {"num-examples", "loss", "dice", "on-training-cases"}


def _cases(n: int, seed: int) -> list:
    """A site's stroke cases: small blobs (32^3, one crop covers a case)."""
    return blob_cases(n, seed=seed, disease="stroke", size=32)


@pytest.fixture(scope="module")
def parent(tmp_path_factory) -> tuple[ModelRegistry, str]:
    """A tiny tumour model: the federation's parent."""
    registry = ModelRegistry(tmp_path_factory.mktemp("federated") / "registry", builtin_dirs=[])
    config = EpisodeConfig(strategy="naive", epochs=2, steps_per_epoch=3, crop_size=32, validation_fraction=0.0,
                           keep="last", precision="fp32", scratch_channels=TINY_CHANNELS)
    version = train_episode(blob_cases(3, seed=1, size=32), "tumour", parent="scratch", registry=registry,
                            device="cpu", config=config).version
    return registry, version


def _settings(version: str, **overrides) -> FederationSettings:
    values = dict(parent=version, disease="stroke", rounds=1, local_steps=1, crop_size=32, strategy="naive",
                  min_sites=2)
    values.update(overrides)
    return FederationSettings(**values)


def _run(registry: ModelRegistry, settings: FederationSettings, sites: dict[str, list], *,
         registries: dict[str, ModelRegistry] | None = None, drop=None, audit: Path | None = None,
         sent: dict | None = None, transform: dict | None = None) -> str:
    """A federation over in-memory sites through Flower's apps and strategy (SequentialGrid transport)."""
    labels = list(sites)

    def open_site(context, site_settings) -> FederatedSite:
        label = labels[int(context.node_config["partition-id"])]
        site = FederatedSite.open(sites[label], site_settings, registry=(registries or {}).get(label, registry),
                                  device="cpu", label=label, audit_dir=audit / label if audit else None)
        if sent is not None:  # record exactly what each site returns to Flower
            original = site.train_round

            def recorded(*args, **kwargs):
                state, metrics = original(*args, **kwargs)
                sent.setdefault(label, []).append(({k: v.clone() for k, v in state.items()}, dict(metrics)))
                return state, metrics

            site.train_round = recorded
        return (transform or {}).get(label, lambda opened: opened)(site)

    grid = SequentialGrid(build_client_app(open_site), [{"partition-id": i, "label": label}
                                                        for i, label in enumerate(labels)], drop=drop)
    return run_federation(FederatedServer(settings, registry=registry), grid)


def _audit_file(folder: Path, name: str) -> Path:
    """The one audit file of this name in a site's folder (they are prefixed with the episode's run id)."""
    found = sorted(folder.glob(f"*-{name}"))
    assert len(found) == 1, (name, sorted(p.name for p in folder.iterdir()))
    return found[0]


# -- settings ----------------------------------------------------------------------------------------------------------
def test_settings_refuse_what_cannot_run() -> None:
    with pytest.raises(SettingsError, match="--rounds"):
        FederationSettings(parent="p", disease="stroke", rounds=0)
    with pytest.raises(SettingsError, match="--aggregation"):
        FederationSettings(parent="p", disease="stroke", aggregation="median")
    with pytest.raises(SettingsError, match="--dp-clip"):
        FederationSettings(parent="p", disease="stroke", dp_noise=1.0)
    with pytest.raises(SettingsError, match="--server-momentum"):
        FederationSettings(parent="p", disease="stroke", aggregation="fedavgm", server_momentum=1.0)
    with pytest.raises(SettingsError, match="fedavgm cannot be combined with --dp-clip"):
        FederationSettings(parent="p", disease="stroke", aggregation="fedavgm", dp_clip=1.0)
    with pytest.raises(SettingsError, match="has no option"):
        FederationSettings(parent="p", disease="stroke", strategy_options={"gama": 1.0})
    settings = FederationSettings(parent="p", disease="stroke", rounds=3, learning_rate=1e-3)
    assert [round(settings.learning_rate_at(r), 6) for r in (1, 2, 3)] == [1e-3, 0.000505, 1e-5]
    carried = FederationSettings.from_round_config(settings.round_config(2))
    assert carried.episode_config() == settings.episode_config()  # what a site trains with is what the server set


# -- aggregation -------------------------------------------------------------------------------------------------------
def test_the_version_is_the_case_weighted_mean_of_what_the_sites_sent(parent, tmp_path) -> None:
    """FedAvg weighted by each site's training cases, exactly; only state-dict tensors and numbers leave a site; the
    version records the lineage and the cases per site, and no case name."""
    registry, version = parent
    sites = {"A": _cases(2, 21), "B": _cases(5, 22)}
    sent: dict = {}
    new = _run(registry, _settings(version, strategy="ours", local_steps=2), sites, audit=tmp_path / "audit",
               sent=sent)

    bundle = registry.get(new)
    weights = bundle.state_dict("network")
    (state_a, metrics_a), = sent["A"]
    (state_b, metrics_b), = sent["B"]
    assert (metrics_a["num-examples"], metrics_b["num-examples"]) == (2, 4)  # B holds one case out for validation
    for key, value in weights.items():
        if value.is_floating_point():
            expected = (2 * state_a[key].double() + 4 * state_b[key].double()) / 6
            assert torch.allclose(value.double(), expected, atol=1e-6), key
    first = next(iter(weights))
    assert not torch.equal(weights[first], registry.get(version).state_dict("network")[first])

    meta = bundle.metadata
    assert meta.parent == version and meta.training["disease"] == "stroke"
    assert meta.training["strategy"]["name"] == "ours"
    federated = meta.training["federated"]
    assert federated["rounds"] == 1 and federated["sites"] == 2 and federated["cases_per_site"] == {"A": 2, "B": 4}
    assert federated["history"][0]["dice"] is not None and not federated["history"][0]["failures"]
    start = registry.get(version).state_dict("network")
    for label, state in (("A", state_a), ("B", state_b)):  # the round log's update norm is the site's real move
        moved = sum(float(((state[k].double() - start[k].double()) ** 2).sum()) for k in start
                    if start[k].is_floating_point()) ** 0.5
        assert federated["history"][0]["update_norms"][label] == pytest.approx(moved, rel=1e-4) and moved > 0
    assert "stroke22-0" not in json.dumps(meta.to_json())

    parent_keys = set(registry.get(version).state_dict("network"))
    for label in sites:  # the audit folder holds what left the site: the parent's tensors and a few numbers
        from safetensors.torch import load_file

        assert set(load_file(str(_audit_file(tmp_path / "audit" / label, "round-1-train.safetensors")))) == parent_keys
        for kind in ("train", "evaluate"):
            record = json.loads(_audit_file(tmp_path / "audit" / label, f"round-1-{kind}.json").read_text())
            assert set(record["metrics"]) <= STATS_KEYS


def test_a_site_with_another_parent_is_refused_and_the_others_go_on(parent, tmp_path) -> None:
    registry, version = parent
    other = ModelRegistry(tmp_path / "other", builtin_dirs=[])
    bundle = registry.get(version)
    altered = {k: v + 0.01 if v.is_floating_point() else v for k, v in bundle.state_dict("network").items()}
    assert other.add(bundle.metadata, {"network": altered}) == version  # same version name, other weights
    sites = {"A": _cases(2, 21), "B": _cases(2, 22),
             "C": _cases(2, 23)}
    new = _run(registry, _settings(version), sites, registries={"C": other})
    federated = registry.get(new).metadata.training["federated"]
    assert federated["cases_per_site"] == {"A": 2, "B": 2}
    # the refusal travels as its code only: the site's own message (weights, versions) stays at the site
    assert federated["history"][0]["failures"] == ["C: other-parent", "evaluation: C: other-parent"]


def test_a_site_whose_training_diverged_is_left_out_of_the_average(parent) -> None:
    registry, version = parent
    sites = {"A": _cases(2, 21), "B": _cases(2, 22), "C": _cases(2, 23)}

    def diverge(site: FederatedSite) -> FederatedSite:
        original = site.train_round

        def nan_round(*args, **kwargs):
            state, metrics = original(*args, **kwargs)
            return {k: v * float("nan") if v.is_floating_point() else v for k, v in state.items()}, metrics

        site.train_round = nan_round
        return site

    new = _run(registry, _settings(version), sites, transform={"C": diverge})
    federated = registry.get(new).metadata.training["federated"]
    assert federated["cases_per_site"] == {"A": 2, "B": 2}
    assert any("not finite" in reason for reason in federated["history"][0]["failures"])
    assert all(torch.isfinite(v).all() for v in registry.get(new).state_dict("network").values())


def test_a_site_with_a_modality_the_model_lacks_is_refused_with_the_fix(parent, tmp_path) -> None:
    registry, version = parent
    folder = write_cases(tmp_path / "swi_site", 2, "stroke")
    for case in folder.iterdir():
        shutil.copy(case / "flair.nii.gz", case / "swi.nii.gz")
    manifest = tmp_path / "swi.json"
    manifest.write_text(json.dumps({"cases": [
        {"case": c.name, "images": {"FLAIR": str(c / "flair.nii.gz"), "SWI": str(c / "swi.nii.gz")},
         "label": str(c / "label.nii.gz")} for c in sorted(folder.iterdir())]}))
    with pytest.raises(ChannelMappingError, match="no SWI channel"):
        FederatedSite.open(str(manifest), _settings(version), registry=registry, device="cpu")


# -- failures and restart ----------------------------------------------------------------------------------------------
def test_a_site_leaving_mid_round_fails_the_episode_without_a_version_and_a_restart_resumes(parent) -> None:
    registry, version = parent
    settings = _settings(version, rounds=2, seed=3)
    sites = {"A": _cases(2, 21), "B": _cases(2, 22)}
    before = {info.version for info in registry.list()}

    def leave_in_round_two(node: int, message) -> bool:
        return node == 2 and int(message.content["config"]["round"]) == 2

    with pytest.raises(FederationError, match="round 2: 1 site"):
        _run(registry, settings, sites, drop=leave_in_round_two)
    assert {info.version for info in registry.list()} == before  # nothing written

    sent: dict = {}
    new = _run(registry, settings, sites, sent=sent)  # the server restarts: round 1 is not trained again
    assert [len(updates) for updates in sent.values()] == [1, 1]
    history = registry.get(new).metadata.training["federated"]["history"]
    assert [record["round"] for record in history] == [1, 2] and all(r["sites"] == 2 for r in history)


# -- FedProx and differential privacy ----------------------------------------------------------------------------------
def test_fedprox_keeps_a_site_closer_to_the_global_weights(parent) -> None:
    registry, version = parent
    site = FederatedSite.open(_cases(2, 21), _settings(version, local_steps=3),
                              registry=registry, device="cpu")
    start = {k: v.clone() for k, v in registry.get(version).state_dict("network").items()}

    def drift(mu: float) -> float:
        state, _ = site.train_round(start, 1, learning_rate=5e-3, proximal_mu=mu)
        return float(sum(((state[k].double() - start[k].double()) ** 2).sum()
                         for k in start if start[k].is_floating_point()) ** 0.5)

    free, held = drift(0.0), drift(50.0)
    assert held < 0.8 * free, (free, held)


def test_dp_clipping_bounds_how_far_one_round_moves_the_model(parent) -> None:
    registry, version = parent
    sites = {"A": _cases(2, 21), "B": _cases(2, 22)}
    new = _run(registry, _settings(version, dp_clip=0.05, seed=4), sites)
    before, after = registry.get(version).state_dict("network"), registry.get(new).state_dict("network")
    moved = sum(((after[k].double() - before[k].double()) ** 2).sum() for k in before
                if before[k].is_floating_point()) ** 0.5
    assert 0 < float(moved) <= 0.05 + 1e-4
    federated = registry.get(new).metadata.training["federated"]
    assert federated["dp_clip"] == 0.05
    assert all(0 < norm <= 0.05 + 1e-6 for norm in federated["history"][0]["update_norms"].values())  # as averaged


def test_fedavgm_moves_by_the_rounds_momentum_and_a_restarted_server_keeps_it(parent) -> None:
    """FedAvgM, exactly, from what the sites sent: ``m_r = beta m_(r-1) + (g_(r-1) - mean_r)``, ``g_r = g_(r-1) -
    lr m_r``. The server stops in round 3 (a site leaves) and restarts: round 3 must go on with round 2's momentum
    (a momentum started afresh gives another model)."""
    registry, version = parent
    beta, server_lr = 0.5, 1.5
    settings = _settings(version, rounds=3, aggregation="fedavgm", server_momentum=beta,
                         server_learning_rate=server_lr, seed=5)
    sites = {"A": _cases(2, 21), "B": _cases(2, 22)}

    def leave_in_round_three(node: int, message) -> bool:
        return node == 2 and int(message.content["config"]["round"]) == 3

    before_restart: dict = {}
    with pytest.raises(FederationError, match="round 3: 1 site"):
        _run(registry, settings, sites, drop=leave_in_round_three, sent=before_restart)
    after_restart: dict = {}
    new = _run(registry, settings, sites, sent=after_restart)
    rounds = {label: before_restart[label][:2] + after_restart[label] for label in sites}
    assert [len(updates) for updates in rounds.values()] == [3, 3]

    expected = {k: v.double() for k, v in registry.get(version).state_dict("network").items()}
    momentum: dict | None = None
    for r in range(3):
        total = sum(rounds[label][r][1]["num-examples"] for label in sites)
        mean = {k: sum(rounds[label][r][1]["num-examples"] * rounds[label][r][0][k].double() for label in sites)
                / total for k in expected}
        step = {k: expected[k] - mean[k] for k in expected}
        momentum = step if momentum is None else {k: beta * momentum[k] + step[k] for k in step}
        expected = {k: expected[k] - server_lr * momentum[k] for k in expected}
    for key, value in registry.get(new).state_dict("network").items():
        assert torch.allclose(value.double(), expected[key], atol=1e-5), key
    federated = registry.get(new).metadata.training["federated"]
    assert (federated["aggregation"], federated["server_momentum"], federated["server_learning_rate"]) == \
        ("fedavgm", beta, server_lr)


# -- command line ------------------------------------------------------------------------------------------------------
def test_simulate_command_trains_from_case_folders_and_app_writes_a_flower_app(parent, tmp_path, capsys) -> None:
    import tomllib

    from brainlesioncl.cli.main import main

    registry, version = parent
    a = write_cases(tmp_path / "a", 2, "stroke")
    b = write_cases(tmp_path / "b", 3, "stroke")
    for label in b.glob("*/label.nii.gz"):  # a multi-class label, as BraTS ships them: needs --label-mapping
        image = sitk.ReadImage(str(label))
        sitk.WriteImage(image * 2, str(label))
    code = main(["--registry", str(registry.root), "federated", "simulate", "--parent", version, "--disease",
                 "stroke", "--rounds", "1", "--local-steps", "2", "--crop-size", "32", "--device", "cpu",
                 "--site", f"north={a}", "--site", f"south={b}", "--progress", "json", "--label-mapping", "nonzero",
                 "--aggregation", "fedavgm", "--server-momentum", "0.3"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    meta = registry.get(summary["version"]).metadata
    assert meta.training["federated"]["cases_per_site"] == {"north": 2, "south": 2}
    federated = meta.training["federated"]
    assert (federated["aggregation"], federated["server_momentum"]) == ("fedavgm", 0.3)

    code = main(["--registry", str(registry.root), "federated", "app", str(tmp_path / "app"), "--parent", version,
                 "--disease", "stroke", "--rounds", "3", "--aggregation", "fedprox", "--option", "gamma=5"])
    assert code == 0
    project = tomllib.loads((tmp_path / "app" / "pyproject.toml").read_text())
    config = project["tool"]["flwr"]["app"]["config"]
    assert config["parent"] == version and config["rounds"] == 3 and config["aggregation"] == "fedprox"
    assert json.loads(config["strategy-options"]) == {"gamma": 5}
    assert project["tool"]["flwr"]["app"]["components"]["clientapp"].startswith("brainlesioncl.federated")
    settings, folder = flower.settings_from_run_config(config)  # what the ServerApp will read back
    assert settings.aggregation == "fedprox" and settings.dp_clip is None and settings.name is None
    assert folder == str(registry.root.resolve())

    assert main(["--registry", str(registry.root), "federated", "app", str(tmp_path / "x"), "--parent", "nope-v9",
                 "--disease", "stroke"]) == 3


# -- a real deployment -------------------------------------------------------------------------------------------------
def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of running processes containing ``text`` (Linux /proc; empty elsewhere)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            line = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        stat = cmdline.with_name("stat")
        try:
            zombie = stat.read_text().split(") ", 1)[1].startswith("Z")
        except (OSError, IndexError):
            zombie = False
        if text in line and not zombie:
            found.append(line)
    return found


# -- what a hospital's IT signs off (issue 32) -----------------------------------------------------------------------
def test_a_failing_site_sends_a_code_never_its_own_message() -> None:
    from brainlesioncl.errors import NoCasesError, UnlabelledCasesError
    from brainlesioncl.federated.site_errors import SITE_ERRORS, error_code, parse_public_reason, public_reason

    assert error_code(UnlabelledCasesError("2 case(s) have no label (pat0001)")) == "unlabelled"
    assert error_code(NoCasesError("No case found in /home/dr/cases")) == "no-cases"
    assert error_code(FederationError("no version v1 in /srv/registry", code="no-parent")) == "no-parent"
    assert error_code(RuntimeError("CUDA out of memory at /opt/x")) == "training-failed"
    for code in SITE_ERRORS:
        assert parse_public_reason(public_reason("north", code)) == ("north", code)
    assert parse_public_reason("north: unlabelled: 2 case(s) have no label (pat0001)") is None  # not our text
    assert public_reason("../etc/passwd", "no-cases").startswith("site: no-cases: ")  # a label is a name, not a path


def test_sites_with_unlabelled_or_no_cases_leak_nothing_identifying_into_the_version(parent, tmp_path) -> None:
    """Two healthy sites, one whose cases have no label, one with an empty folder: the version comes from the two,
    and its metadata names the failing sites by label and code only: no case name, path, user or host."""
    import getpass

    registry, version = parent
    north = write_cases(tmp_path / "north", 2, "stroke")
    south = write_cases(tmp_path / "south", 2, "stroke")
    east = write_cases(tmp_path / "east-hospital-cases", 2, "stroke", labels=False)
    west = tmp_path / "west-empty"
    west.mkdir()
    new = _run(registry, _settings(version), {"north": str(north), "south": str(south), "east": str(east),
                                              "west": str(west)})
    federated = registry.get(new).metadata.training["federated"]
    assert federated["cases_per_site"] == {"north": 2, "south": 2}
    assert sorted(federated["history"][0]["failures"]) == ["east: unlabelled", "evaluation: east: unlabelled",
                                                           "evaluation: west: no-cases", "west: no-cases"]
    text = (registry.path_of(new) / "bundle.json").read_text()  # everything the version records
    case_names = [p.name for p in east.iterdir()] + [p.name for p in north.iterdir()]
    for forbidden in [*case_names, str(tmp_path), "east-hospital-cases", "west-empty", getpass.getuser(),
                      socket.gethostname()]:
        assert forbidden not in text, forbidden


def test_the_server_listens_on_loopback_unless_told_and_insecure_needs_a_network_confirmation() -> None:
    from brainlesioncl.cli.federated import server_command
    from brainlesioncl.cli.main import build_parser

    def command(*argv: str) -> list[str]:
        return server_command(build_parser().parse_args(["federated", "server", *argv]))

    default = command("--insecure")
    for option, address in (("--fleet-api-address", "127.0.0.1:9092"), ("--control-api-address", "127.0.0.1:9093"),
                            ("--serverappio-api-address", "127.0.0.1:9091")):
        assert default[default.index(option) + 1] == address
    chosen = command("--insecure", "--fleet-api-address", "127.0.0.1:19092")
    assert chosen[chosen.index("--fleet-api-address") + 1] == "127.0.0.1:19092"
    with pytest.raises(SettingsError, match="unencrypted"):
        command("--insecure", "--fleet-api-address", "0.0.0.0:9092")
    assert "--insecure" in command("--insecure", "--fleet-api-address", "0.0.0.0:9092", "--allow-insecure-network")
    secure = command("--certificates", "ca.pem", "server.pem", "server.key", "--fleet-api-address", "0.0.0.0:9092")
    assert "--insecure" not in secure and "--ssl-certfile" in secure
    with pytest.raises(SettingsError, match="HOST:PORT"):
        command("--insecure", "--fleet-api-address", "9092")


def test_a_site_checks_its_cases_before_joining(parent, tmp_path, capsys, monkeypatch) -> None:
    from brainlesioncl.cli import federated as federated_cli
    from brainlesioncl.cli.main import main

    started = []
    monkeypatch.setattr(federated_cli, "_run_flower", lambda *args, **kwargs: started.append(args) or 0)
    unlabelled = write_cases(tmp_path / "unlabelled", 2, "stroke", labels=False)
    code = main(["federated", "site", "--cases", str(unlabelled), "--insecure", "--label", "east"])
    assert code == 2 and "2 of 2 case(s)" in capsys.readouterr().err and not started
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["federated", "site", "--cases", str(empty), "--insecure"]) == 2 and not started
    broken = write_cases(tmp_path / "broken", 1, "stroke")
    next(broken.iterdir()).joinpath("flair.nii.gz").write_bytes(b"not an image")
    assert main(["federated", "site", "--cases", str(broken), "--insecure"]) == 2
    assert "FLAIR file" in capsys.readouterr().err and not started
    good = write_cases(tmp_path / "good", 2, "stroke")
    assert main(["federated", "site", "--cases", str(good), "--insecure", "--label", "north"]) == 0
    assert len(started) == 1 and "2 annotated case(s) found and readable" in capsys.readouterr().err


def test_every_flower_process_is_quiet_and_finds_its_helpers(monkeypatch) -> None:
    import brainlesioncl.federated  # noqa: F401 - importing it quiets this process
    from brainlesioncl.federated.environment import flower_environment

    assert os.environ["FLWR_TELEMETRY_ENABLED"] == "0" and os.environ["FLWR_DISABLE_UPDATE_CHECK"] == "1"
    env = flower_environment({"PATH": "/usr/bin:/bin", "FLWR_TELEMETRY_ENABLED": "1"})
    assert env["FLWR_TELEMETRY_ENABLED"] == "0" and env["FLWR_DISABLE_UPDATE_CHECK"] == "1"
    assert env["PATH"].split(os.pathsep) == [str(Path(sys.executable).parent), "/usr/bin", "/bin"]
    assert flower_environment({})["PATH"] == str(Path(sys.executable).parent)


class CountingRelay:
    """A TCP relay on loopback that keeps every byte crossing it (the sites' connection to the server), to check
    what a site really sends. Stops with :meth:`close`."""

    def __init__(self, upstream_port: int) -> None:
        import threading

        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.upstream_port = upstream_port
        self.sent = bytearray()  # site -> server
        self.received = bytearray()  # server -> site
        self.lock = threading.Lock()
        self.open = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import threading

        while self.open:
            try:
                client, _ = self.listener.accept()
                server = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=30)
            except OSError:
                return
            for source, target, buffer in ((client, server, self.sent), (server, client, self.received)):
                threading.Thread(target=self._pump, args=(source, target, buffer), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, buffer: bytearray) -> None:
        try:
            while data := source.recv(65536):
                with self.lock:
                    buffer.extend(data)
                target.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, target):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.open = False
        self.listener.close()


@pytest.mark.slow
def test_a_federated_study_by_full_paths_in_a_minimal_environment_leaks_nothing(parent, tmp_path) -> None:
    """Issue 32's rehearsal: ``brainlesioncl federated server`` on chosen loopback ports with a state file, three
    sites started by the CLI's full path with ``env -i``-like environments (no PATH to the virtual environment), the
    app, ``flwr run``. Two sites are healthy; the third's registry lacks the parent, so it fails in the round. Then a
    second episode in which one site is killed after its first round. Nothing identifying crosses the relay or lands
    in the version, the server's state file or its log; the failing and the killed site are named by their labels."""
    import getpass

    registry, version = parent
    scripts = Path(sys.executable).parent
    tools = {name: scripts / name for name in ("brainlesioncl", "flwr", "flower-superlink", "flower-supernode",
                                               "flower-superexec")}
    if not all(path.exists() for path in tools.values()):
        pytest.skip("Flower's or BrainLesionCL's command-line tools are not installed beside this Python")
    fleet, control, serverappio = _free_ports(3)
    relay = CountingRelay(fleet)
    base = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home"), "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1"}
    (tmp_path / "home").mkdir()
    logs = tmp_path / "logs"
    logs.mkdir()
    database = tmp_path / "superlink.db"
    cases = {"north": write_cases(tmp_path / "north-cases", 2, "stroke"),
             "south": write_cases(tmp_path / "south-cases", 2, "stroke"),
             "east": write_cases(tmp_path / "east-cases", 2, "stroke")}
    empty_registry = tmp_path / "east-registry"  # east holds no parent: it fails inside the round
    processes: dict[str, subprocess.Popen] = {}

    def start(name: str, command: list[str]) -> subprocess.Popen:
        processes[name] = subprocess.Popen(command, env=base, cwd=tmp_path, stdout=open(logs / f"{name}.log", "w"),
                                           stderr=subprocess.STDOUT, start_new_session=True)
        return processes[name]

    def start_site(label: str, io_port: int, run: str) -> None:
        site_registry = empty_registry if label == "east" and run == "first" else registry.root
        start(f"{run}-{label}", [str(tools["brainlesioncl"]), "--registry", str(site_registry), "federated", "site",
                                 "--cases", str(cases[label]), "--superlink", f"127.0.0.1:{relay.port}", "--label",
                                 label, "--clientappio-address", f"127.0.0.1:{io_port}", "--device", "cpu",
                                 "--insecure", "--progress", "json", "--audit-dir", str(tmp_path / "audit" / label)])

    def episode(run: str, rounds: int, kill: str | None = None) -> tuple[subprocess.CompletedProcess, list[str]]:
        app = tmp_path / f"app-{run}"
        subprocess.run([str(tools["brainlesioncl"]), "--registry", str(registry.root), "federated", "app", str(app),
                        "--parent", version, "--disease", "stroke", "--rounds", str(rounds), "--local-steps", "1",
                        "--crop-size", "32", "--strategy", "naive", "--round-timeout", "60", "--control",
                        f"127.0.0.1:{control}"], check=True, env=base, capture_output=True)
        before = {info.version for info in registry.list()}
        flwr = subprocess.Popen([str(tools["flwr"]), "run", str(app), "hospitals", "--stream"], env=base, cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, encoding="utf-8", errors="replace")
        if kill is not None:  # once the site sent its first update, it crashes with its SuperNode, mid-round (while
            import signal  # it evaluates: a site killed while sending can leave Flower waiting for half a reply)

            log, deadline = logs / f"{run}-{kill}.log", time.time() + 300
            while time.time() < deadline and "Receiving: evaluate message" not in log.read_text(errors="replace"):
                time.sleep(0.1)
            os.killpg(processes[f"{run}-{kill}"].pid, signal.SIGKILL)
        try:
            output, _ = flwr.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            flwr.kill()
            output = flwr.communicate()[0]
            raise AssertionError(f"flwr run did not end: {output[-4000:]}") from None
        deadline = time.time() + 60
        while time.time() < deadline and not ({info.version for info in registry.list()} - before):
            time.sleep(1)
        return subprocess.CompletedProcess(flwr.args, flwr.returncode, output), \
            sorted({info.version for info in registry.list()} - before)

    try:
        start("server", [str(tools["brainlesioncl"]), "federated", "server", "--insecure", "--fleet-api-address",
                         f"127.0.0.1:{fleet}", "--control-api-address", f"127.0.0.1:{control}",
                         "--serverappio-api-address", f"127.0.0.1:{serverappio}", "--database", str(database)])
        time.sleep(4)
        for label, port in zip(cases, _free_ports(3), strict=True):
            start_site(label, port, "first")
        first, new = episode("first", rounds=1)
        assert first.returncode == 0 and len(new) == 1, (first.stdout[-3000:], (logs / "first-east.log").read_text())
        history = registry.get(new[0]).metadata.training["federated"]["history"]
        assert registry.get(new[0]).metadata.training["federated"]["cases_per_site"] == {"north": 2, "south": 2}
        assert "east: no-parent" in history[0]["failures"]
        east_log = (logs / "first-east.log").read_text()
        assert "site east, round 1:" in east_log and "Traceback" not in east_log  # one line, the detail kept here
        # the version is the case-weighted mean of what the two healthy sites' audit folders say they sent, and they
        # sent exactly the parent's tensors; each showed its progress (what the Slicer panel reads)
        from safetensors.torch import load_file

        weights = registry.get(new[0]).state_dict("network")
        sent = {label: load_file(str(_audit_file(tmp_path / "audit" / label, "round-1-train.safetensors")))
                for label in ("north", "south")}
        assert all(set(state) == set(weights) for state in sent.values())
        for key, value in weights.items():
            if value.is_floating_point():
                assert torch.allclose(value.double(), (sent["north"][key].double() + sent["south"][key].double()) / 2,
                                      atol=1e-6), key
        for label in ("north", "south"):
            assert 'PROGRESS {"fraction": 1.0, "stage": "round 1/1: ' in (logs / f"first-{label}.log").read_text()
        for label in ("north", "south", "east"):
            processes.pop(f"first-{label}").terminate()
        time.sleep(2)
        for label, port in zip(cases, _free_ports(3), strict=True):
            start_site(label, port, "second")
        second, new2 = episode("second", rounds=2, kill="south")
        assert len(new2) == 1, (second.stdout[-3000:], (logs / "server.log").read_text()[-3000:])
        history2 = registry.get(new2[0]).metadata.training["federated"]["history"]
        failures2 = [f for record in history2 for f in record["failures"]]
        assert "evaluation: south: did not answer (stopped, disconnected or too slow)" in failures2, history2
        assert history2[0]["cases"] == {"north": 2, "south": 2, "east": 2}
        assert history2[1]["cases"] == {"north": 2, "east": 2}
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        relay.close()
    assert not _processes_mentioning(f"127.0.0.1:{relay.port}"), "a SuperNode outlived its `federated site` command"
    assert len(relay.sent) > 1_000_000  # the weights did cross (about 1.7 MB per reply)
    audits = [p.name for label in ("north", "south") for p in (tmp_path / "audit" / label).glob("*round-1-train.json")]
    assert len(audits) == 4 and len(set(audits)) == 2  # two runs, two names: the second did not overwrite the first
    # what is the sites' own: case names, their folders and paths, a site's registry and audit folders (the
    # coordinator's own paths, its registry in the run config and its Flower home, are the coordinator's business)
    forbidden = [*(p.name for folder in cases.values() for p in folder.iterdir()),
                 *(str(folder) for folder in cases.values()), *(f"{label}-cases" for label in cases), "east-registry",
                 str(tmp_path / "audit"),
                 # the user's and the machine's names, where long enough to mean something in binary data (this
                 # machine's "vm" occurs by chance in 2 MB of weights)
                 *(name for name in (getpass.getuser(), socket.gethostname()) if len(name) >= 6)]
    stored = [registry.path_of(v) / "bundle.json" for v in (*new, *new2)]
    places = {"bytes the sites sent": bytes(relay.sent), "server state file": database.read_bytes(),
              "server log": (logs / "server.log").read_bytes(),
              **{f"version {p.parent.name}": p.read_bytes() for p in stored}}
    for where, data in places.items():
        for text in forbidden:
            assert text.encode() not in data, f"{text!r} found in the {where}"
