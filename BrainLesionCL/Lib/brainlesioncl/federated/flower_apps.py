"""Flower's side of a federated episode: the ServerApp, the ClientApp, and a grid that runs sites in this process.

Built on Flower's Message API (``flwr.serverapp`` / ``flwr.clientapp``, Flower >= 1.31): Flower carries the
messages and its strategies aggregate (``FedAvg`` weighted by each site's case count under the key
``num-examples``, ``FedProx``, ``FedAvgM`` with server momentum, and the server-side fixed-clipping
differential-privacy wrapper). BrainLesionCL adds, around Flower's strategy, what an episode needs: the round's
settings in every message, refusals that name their reason, replies checked to carry exactly the parent's tensors, a
round log, a checkpoint per round, and one registry version at the end (:class:`~.server.FederatedServer`).

Two runtimes share these apps:

* deployment: ``flower-superlink`` at the coordinating site, ``flower-supernode`` at each hospital (``node-config``
  names its cases), ``flwr run`` with this package's app (``brainlesioncl federated app`` writes it);
* :class:`SequentialGrid`: every site in this process, one after the other, for benchmarks and tests on a small
  machine (same apps, same strategy, same messages; no network). Flower's Ray simulation runtime would do the same
  with a Ray cluster; on 2 cores it took minutes for a round of two tiny sites.

Only this module imports ``flwr``; the rest of BrainLesionCL runs without it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Error, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.constant import SUPERLINK_NODE_ID, ErrorCode
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping, FedAvg, FedAvgM, FedProx

from ..registry import ModelRegistry
from .server import FederatedServer
from .settings import FederationSettings
from .site import FederatedSite, FederationError
from .site_errors import error_code, parse_public_reason, public_reason

__all__ = ["SITE_CONFIG_KEYS", "SequentialGrid", "build_client_app", "build_server_app", "run_federation"]

#: What a site's ``node-config`` may hold: its cases (folder, CSV or JSON manifest), its model registry, its label in
#: the server's log (optional; sites are otherwise numbered), the preparation mode, label mapping and device, and an
#: audit folder that keeps a copy of every reply the site sends, and a status file rewritten after every reply.
SITE_CONFIG_KEYS = ("cases", "registry", "label", "prepare", "label-mapping", "device", "audit", "status")
logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------------------ server
def _flower_strategy(server: FederatedServer, offset: int) -> Any:
    """Flower's FedAvg, FedProx (either optionally in the DP wrapper) or FedAvgM, with BrainLesionCL's round
    bookkeeping. FedAvgM's momentum is checkpointed with the global weights, so a restarted server goes on with it."""
    settings = server.settings
    base = {"fedprox": FedProx, "fedavgm": FedAvgM}.get(settings.aggregation, FedAvg)
    expected = set(server.initial_state)

    class EpisodeRounds(base):  # type: ignore[misc, valid-type]
        """Adds the episode's settings to each round's messages and logs every reply (see the module docstring)."""

        def __init__(self, **options: Any) -> None:
            super().__init__(**options)
            self.site_names: dict[int, str] = {}
            self.latest = ArrayRecord()
            self.sent: dict[str, Any] = {}  # the round's global weights (tensors), to measure each update against
            self.asked: set[int] = set()  # the nodes asked in the current step of a round
            self.taking_part: set[int] = set()  # the nodes whose update the last round aggregated

        def _name(self, reply: Message) -> str:
            label = str(reply.content["site"]["label"]) if "site" in reply.content.config_records else ""
            return self._node_name(reply.metadata.src_node_id, label)

        def _node_name(self, node: int, label: str = "") -> str:
            """A site by its operator's label (remembered from any reply), else numbered in order of first answer."""
            if label:
                self.site_names[node] = label
            return self.site_names.setdefault(node, f"site-{len(self.site_names) + 1}")

        def _ask(self, messages: Iterable[Message]) -> list[Message]:
            messages = list(messages)
            self.asked = {m.metadata.dst_node_id for m in messages}
            return messages

        @staticmethod
        def _config(server_round: int) -> ConfigRecord:
            """The episode's settings for this round (rounds count on after a restart's resume)."""
            return ConfigRecord({**server.round_config(server_round + offset)})

        def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                            grid: Grid) -> Iterable[Message]:
            self.sent = arrays.to_torch_state_dict()
            return self._ask(super().configure_train(server_round, arrays, self._config(server_round), grid))

        def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                               grid: Grid) -> Iterable[Message]:
            self.latest = arrays  # the round's global model (after DP noise, when on): what gets checkpointed
            return self._ask(super().configure_evaluate(server_round, arrays, self._config(server_round), grid))

        def _momentum(self) -> dict[str, torch.Tensor] | None:
            """FedAvgM's momentum by tensor name (None for the other aggregations, or before the first round)."""
            vector = getattr(self, "momentum_vector", None)
            if vector is None:
                return None
            # FedAvgM keeps the vector in the order of the aggregated arrays, which are this round's global model
            return {key: torch.from_numpy(np.asarray(v)) for key, v in zip(self.latest.keys(), vector, strict=True)}

        def _metrics(self, replies: list[Message]) -> list[tuple[str, dict[str, float]]]:
            """``(site name, {metric: number})`` of each reply (sites send scalars only)."""
            return [(self._name(r), {k: float(v) for k, v in r.content.metric_records["metrics"].items()
                                     if isinstance(v, (int, float))}) for r in replies]

        def _split(self, replies: Iterable[Message], *, arrays: bool) -> tuple[list[Message], list[str]]:
            """The valid replies, and one line per site that failed: its label and allow-listed code, or that it did
            not answer. A reason that is not one of :mod:`.site_errors`' is never recorded (it could carry what must
            not leave a site)."""
            valid, failures, answered = [], [], set()
            for reply in replies:
                node = reply.metadata.src_node_id
                if reply.has_error():
                    parsed = parse_public_reason(reply.error.reason or "")
                    if node == SUPERLINK_NODE_ID or parsed is None:
                        continue  # the SuperLink's own error for a site that is gone (it sends those as node 1):
                        # counted below, by node
                    answered.add(node)
                    failures.append(f"{self._node_name(node, parsed[0])}: {parsed[1]}")
                    continue
                answered.add(node)
                if arrays and set(reply.content["arrays"].keys()) != expected:
                    failures.append(f"{self._name(reply)} sent tensors that are not the parent's; ignored")
                elif arrays and not all(np.isfinite(a).all() for a in reply.content.array_records["arrays"]
                                        .to_numpy_ndarrays() if a.dtype.kind == "f"):
                    failures.append(f"{self._name(reply)} sent weights that are not finite (NaN or infinite: its "
                                    "training diverged); ignored")
                else:
                    valid.append(reply)
            for node in sorted(self.asked - answered):
                failures.append(f"{self._node_name(node)}: did not answer (stopped, disconnected or too slow)")
            if arrays:  # a site that took part in the last round and is no longer connected is not even asked
                for node in sorted(self.taking_part - self.asked):
                    failures.append(f"{self._node_name(node)}: did not answer (no longer connected)")
                self.taking_part = {r.metadata.src_node_id for r in valid}
            return valid, failures

        def _update_norm(self, reply: Message) -> float:
            """L2 norm of a site's weights minus the round's global weights (floating-point tensors)."""
            squares = 0.0
            for key, tensor in reply.content.array_records["arrays"].to_torch_state_dict().items():
                if tensor.is_floating_point() and key in self.sent:
                    squares += float(((tensor.double() - self.sent[key].double()) ** 2).sum())
            return squares**0.5

        def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> Any:
            valid, failures = self._split(replies, arrays=True)
            norms = {self._name(r): self._update_norm(r) for r in valid} if self.sent else {}
            server.record_training(server_round + offset, self._metrics(valid), failures, norms)
            return super().aggregate_train(server_round, valid)

        def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> Any:
            valid, failures = self._split(replies, arrays=False)
            server.record_evaluation(server_round + offset, self._metrics(valid), failures,
                                     self.latest.to_torch_state_dict(), momentum=self._momentum())
            return super().aggregate_evaluate(server_round, valid)

    options: dict[str, Any] = {
        FedProx: {"proximal_mu": settings.proximal_mu},
        FedAvgM: {"server_momentum": settings.server_momentum, "server_learning_rate": settings.server_learning_rate},
    }.get(base, {})
    strategy = EpisodeRounds(fraction_train=1.0, fraction_evaluate=1.0, min_train_nodes=settings.min_sites,
                             min_evaluate_nodes=settings.min_sites, min_available_nodes=settings.min_sites,
                             **options)
    if base is FedAvgM and server.momentum is not None:  # a restart: go on with the momentum of the last round
        strategy.momentum_vector = [tensor.numpy() for tensor in server.momentum.values()]
    if settings.dp_clip is None:
        return strategy
    return DifferentialPrivacyServerSideFixedClipping(strategy, noise_multiplier=settings.dp_noise,
                                                      clipping_norm=settings.dp_clip,
                                                      num_sampled_clients=settings.min_sites)


def run_federation(server: FederatedServer, grid: Grid) -> str:
    """Run (or resume) the rounds on ``grid`` and write the new version; returns its id.

    Raises:
        FederationError: a round had fewer than ``min_sites`` updates (nothing written; a restart resumes).
    """
    settings = server.settings
    state, done = server.resume()
    if done < settings.rounds:
        strategy = _flower_strategy(server, offset=done)
        result = strategy.start(grid=grid, initial_arrays=ArrayRecord(state), num_rounds=settings.rounds - done,
                                timeout=settings.round_timeout)
        state = result.arrays.to_torch_state_dict()
    return server.finish(state)


def settings_from_run_config(run_config: Mapping[str, Any]) -> tuple[FederationSettings, str | None]:
    """``flwr run --run-config`` values (the same words as the CLI's options) to settings and a registry folder."""
    known = {f: f.replace("_", "-") for f in FederationSettings.__dataclass_fields__}
    values: dict[str, Any] = {}
    for field, key in known.items():
        if key in run_config:
            values[field] = run_config[key]
    if "strategy_options" in values and isinstance(values["strategy_options"], str):
        values["strategy_options"] = json.loads(values["strategy_options"] or "{}")
    if "dp_clip" in values and float(values["dp_clip"]) <= 0:
        values["dp_clip"] = None  # run configs have no null: 0 means off, "" means the default name
    if not values.get("name"):
        values["name"] = None
    registry = run_config.get("registry") or None
    return FederationSettings(**values), (str(registry) if registry else None)


def build_server_app(make_server: Callable[[Context], FederatedServer] | None = None,
                     on_done: Callable[[str], None] | None = None) -> ServerApp:
    """A ServerApp running one federated episode; by default its settings come from the run config."""
    app = ServerApp()

    def default_server(context: Context) -> FederatedServer:
        settings, registry = settings_from_run_config(context.run_config)
        return FederatedServer(settings, registry=ModelRegistry(registry) if registry else None)

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        server = (make_server or default_server)(context)
        version = run_federation(server, grid)
        if on_done is not None:
            on_done(version)

    return app


# ------------------------------------------------------------------------------------------------------------ sites
def build_client_app(open_site: Callable[[Context, FederationSettings], FederatedSite] | None = None) -> ClientApp:
    """A ClientApp for a site; by default its cases and registry come from the SuperNode's ``node-config``."""
    app = ClientApp()
    #: One prepared site per node (a process may host several in a simulation): cases load once, not every round.
    cache: dict[int, tuple[str, FederatedSite]] = {}

    def default_site(context: Context, settings: FederationSettings) -> FederatedSite:
        node = {k: context.node_config[k] for k in SITE_CONFIG_KEYS if k in context.node_config}
        if "cases" not in node:
            raise FederationError("this SuperNode has no 'cases' in its node-config; start it with "
                                  "--node-config \"cases='/path/to/cases'\" (a folder or manifest of annotated cases).")
        registry = ModelRegistry(str(node["registry"])) if node.get("registry") else None
        return FederatedSite.open(
            str(node["cases"]), settings, registry=registry,
            device=str(node.get("device", "auto")), label_mapping=str(node.get("label-mapping", "strict")),
            prepare=str(node.get("prepare", "auto")), label=str(node["label"]) if node.get("label") else None,
            audit_dir=str(node["audit"]) if node.get("audit") else None,
            status_file=str(node["status"]) if node.get("status") else None,
        )

    def site_for(message: Message, context: Context) -> tuple[FederatedSite, dict[str, Any]]:
        config = dict(message.content["config"])
        settings = FederationSettings.from_round_config(config)
        key = json.dumps([settings.to_dict(), dict(context.node_config)], sort_keys=True, default=str)
        if context.node_id not in cache or cache[context.node_id][0] != key:
            cache[context.node_id] = (key, (open_site or default_site)(context, settings))
        site = cache[context.node_id][1]
        site.check_parent(str(config["parent"]), str(config["parent-fingerprint"]))
        return site, config

    def reply(message: Message, site: FederatedSite, config: Mapping[str, Any], metrics: Mapping[str, float],
              state: Mapping[str, torch.Tensor] | None = None) -> Message:
        site.record_reply("train" if state is not None else "evaluate", int(config["round"]), int(config["rounds"]),
                          metrics, state, run=str(config.get("run", "")))
        records: dict[str, Any] = {"metrics": MetricRecord(dict(metrics)),
                                   "site": ConfigRecord({"label": site.label or ""})}
        if state is not None:
            records["arrays"] = ArrayRecord(dict(state))
        return Message(RecordDict(records), reply_to=message)

    def guarded(step: Callable[[Message, Context], Message]) -> Callable[[Message, Context], Message]:
        """A step whose failure is one line with the details in this site's log and a reply carrying only an
        allow-listed code (:mod:`.site_errors`), never the error's own text."""

        def run(message: Message, context: Context) -> Message:
            try:
                return step(message, context)
            except Exception as error:  # noqa: BLE001 - every failure becomes a code; the details stay here
                label = str(context.node_config.get("label") or "") or None
                code = error_code(error)
                config = dict(message.content["config"]) if "config" in message.content else {}
                logger.error("site %s, round %s: %s (sent to the server as '%s')", label or "(unnamed)",
                             config.get("round", "?"), error, code)
                return Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=public_reason(label, code)),
                               reply_to=message)

        return run

    @app.train()
    @guarded
    def train(message: Message, context: Context) -> Message:
        site, config = site_for(message, context)
        arrays = message.content.array_records["arrays"]
        state, metrics = site.train_round(arrays.to_torch_state_dict(), int(config["round"]),
                                          learning_rate=float(config["learning-rate"]),
                                          proximal_mu=float(config.get("proximal-mu", 0.0)))
        return reply(message, site, config, metrics, state)

    @app.evaluate()
    @guarded
    def evaluate(message: Message, context: Context) -> Message:
        site, config = site_for(message, context)
        metrics = site.evaluate(message.content.array_records["arrays"].to_torch_state_dict())
        return reply(message, site, config, metrics)

    return app


# --------------------------------------------------------------------------------------------- in-process runtime
class SequentialGrid(Grid):
    """Flower's Grid interface over sites that live in this process and answer one after the other.

    For benchmarks and tests on a small machine: the ServerApp's strategy, the ClientApp and the messages are
    Flower's; only the transport is a function call. A site whose ClientApp raises answers with an error reply
    carrying the reason, as a SuperNode would.
    """

    def __init__(self, client_app: ClientApp, node_configs: list[dict[str, Any]], *, run_id: int = 1,
                 drop: Callable[[int, Message], bool] | None = None) -> None:
        self.client_app = client_app
        self.contexts = {i + 1: Context(run_id=run_id, node_id=i + 1, node_config=dict(c), state=RecordDict(),
                                        run_config={}) for i, c in enumerate(node_configs)}
        self._run: Any = None
        self._inbox: dict[str, Message] = {}
        #: ``drop(node_id, message)`` True: that site does not answer this message (a site leaving mid-round).
        self.drop = drop

    def set_run(self, run: Any) -> None:
        self._run = run

    @property
    def run(self) -> Any:
        return self._run

    def create_message(self, content: RecordDict, message_type: str, dst_node_id: int, group_id: str,
                       ttl: float | None = None) -> Message:
        return Message(content, dst_node_id=dst_node_id, message_type=message_type, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        return list(self.contexts)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for number, message in enumerate(messages, len(self._inbox) + 1):
            reply = self._deliver(message)
            if reply is not None:
                self._inbox[str(number)] = reply
            ids.append(str(number))
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return [self._inbox.pop(i) for i in message_ids if i in self._inbox]

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        return list(self.pull_messages(self.push_messages(messages)))

    def _deliver(self, message: Message) -> Message | None:
        node = message.metadata.dst_node_id
        if self.drop is not None and self.drop(node, message):
            return None
        try:
            answer = self.client_app(message, self.contexts[node])
        except Exception:  # a ClientApp that crashed outright: the reply Flower's SuperNode would send
            answer = Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason="the ClientApp crashed"),
                             reply_to=message)
        return answer
