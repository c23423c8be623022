"""The embedded default's composition root: every party, each over its own directory.

:class:`Deployment` hands out one object per party, each built over that party's
own directory only (:mod:`orchestrator.embedded.layout`), and wires them through
the interfaces the separated deployment uses over the network:

* the custody log operator in-process (:class:`~orchestrator.log.operator.
  LogOperator`), which every party writes its own signed events to;
* each nation's custodian in-process (:class:`~orchestrator.nation.custodian.
  LocalCustodian`), unless the orchestrator's directory of custodians names a
  service for it (then its mTLS client, with the orchestrator's certificate);
* the orchestrator (:class:`~orchestrator.submit.context.Orchestrator`) and the
  officers.

Parsl workers are separate processes at the site: for the duration of a job
:meth:`Deployment.task_endpoints` serves the log and every in-process
custodian on loopback over TLS (the same services as ``log serve`` and
``custodian serve``), and the orchestrator's sealed datasets over HTTP, and
hands the tasks their URLs and CA certificates.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from orchestrator.embedded.layout import StateDir
from orchestrator.errors import NotFound
from orchestrator.log.operator import LogOperator, LogState
from orchestrator.nation.custodian import LocalCustodian
from orchestrator.nation.identity import NationState
from orchestrator.net.custodian_client import HttpCustodian
from orchestrator.net.directory import load_directory
from orchestrator.net.log_client import HttpLog
from orchestrator.net.log_directory import load_log_entry
from orchestrator.officer.identity import OfficerState
from orchestrator.protocol.custodian import CustodianApi
from orchestrator.site.identity import SiteState
from orchestrator.submit.context import Orchestrator, TaskEndpoints
from orchestrator.submit.registry import Registry
from orchestrator.submit.siteconfig import SiteConfig
from orchestrator.timeutil import Clock, system_clock

__all__ = ["Deployment"]

_LOGS: dict[Path, LogOperator] = {}
_LOCK = threading.Lock()


class Deployment:
    """The parties of the embedded default in state directory ``state``.

    Parameters
    ----------
    state
        The embedded state directory.
    clock
        The custodians' clock (tests inject one).
    """

    def __init__(self, state: StateDir, *, clock: Clock = system_clock) -> None:
        self.state = state
        self.clock = clock
        self._custodians: dict[str, LocalCustodian] = {}

    # -- parties -------------------------------------------------------------------
    def log(self) -> LogOperator:
        """The log operator over ``<state>/log`` (one per process and directory)."""
        root = self.state.log_dir.resolve()
        with _LOCK:
            if root not in _LOGS or not (root / "log.key").exists():
                self.state.ensure()
                _LOGS[root] = LogOperator(LogState(root))
            return _LOGS[root]

    def nation(self, code: str) -> NationState:
        """Nation ``code``'s own directory."""
        return NationState(self.state.nation_dir(code), code)

    def custodian(self, code: str) -> LocalCustodian:
        """Nation ``code``'s custodian in-process, over its own directory.

        Raises
        ------
        NotFound
            If the nation is not initialised here.
        """
        if code not in self._custodians:
            nation = self.nation(code).require()
            self._custodians[code] = LocalCustodian(nation, self.log(),
                                                    clock=self.clock)
        return self._custodians[code]

    def officer(self, code: str) -> OfficerState:
        """Nation ``code``'s officer's own directory."""
        return OfficerState(self.state.officer_dir(code), code)

    def site(self, name: str) -> SiteState:
        """Site ``name``'s own directory."""
        return SiteState(self.state.site_dir(name))

    def remote(self) -> dict[str, Any]:
        """Nations the orchestrator reaches as services (its ``nations.toml``)."""
        return load_directory(self.state.orchestrator_dir)

    def remote_log(self) -> HttpLog | None:
        """The log service the orchestrator's ``log.toml`` names, else ``None``
        (the in-process log operator)."""
        entry = load_log_entry(self.state.orchestrator_dir)
        return None if entry is None else HttpLog(entry.url, ca=entry.ca)

    def connect(self, code: str) -> CustodianApi:
        """Nation ``code``'s custodian: its service if the orchestrator's directory
        names one, else in-process."""
        entry = self.remote().get(code)
        if entry is not None:
            return HttpCustodian.from_entry(entry)
        return self.custodian(code)

    def connector(self, tls: Path) -> Callable[[str], CustodianApi]:
        """Nation -> its custodian as the party whose TLS client material is in
        ``tls`` (``client.key``, ``<NATION>.pem``) reaches it: the service that
        party's own directory of custodians names (``tls/../nations.toml``, on
        a machine of its own), else the orchestrator's, else in-process."""
        own = load_directory(tls.parent)
        if own:
            return lambda code: HttpCustodian.from_entry(own[code]) if code in own \
                else self._missing(code, tls.parent)
        remote = self.remote()

        def connect(code: str) -> CustodianApi:
            entry = remote.get(code)
            if entry is None:
                return self.custodian(code)
            return HttpCustodian(code, entry.url, ca=entry.ca,
                                 cert=tls / f"{code}.pem", key=tls / "client.key")

        return connect

    @staticmethod
    def _missing(code: str, directory: Path) -> CustodianApi:
        raise NotFound(f"no custodian service of {code} is registered (sovereign "
                       f"custodian register {code} ...)",
                       source=str(directory / "nations.toml"))

    def officer_connect(self, nation: str) -> Callable[[str], CustodianApi]:
        """How ``nation``'s officer reaches custodians (its certificates)."""
        return self.connector(self.officer(nation).root / "tls")

    def log_connect(self) -> Callable[[str], CustodianApi]:
        """How the log operator reaches custodians (to ask them to witness)."""
        return self.connector(self.log().state.client_dir)

    def orchestrator(self) -> Orchestrator:
        """The orchestrator over its own directory (initialised and enrolled with
        the log on first use)."""
        from orchestrator.protocol.log import SignedEvent
        from orchestrator.submit.context import ORCHESTRATOR_ACTOR, init_orchestrator

        remote = self.remote_log()
        if remote is not None:  # a separated deployment: the log is a service
            return Orchestrator(root=self.state.orchestrator_dir, log=remote,
                                connect=self.connect,
                                task_endpoints=self.task_endpoints)
        self.state.ensure()
        if not self.state.orchestrator_key.exists():
            init_orchestrator(self.state.orchestrator_dir)
        if self.log().actor_key(ORCHESTRATOR_ACTOR) is None:
            self.log().enroll(SignedEvent.from_json(json.loads(
                (self.state.orchestrator_dir / "enrollment.json").read_bytes())))
        return Orchestrator(root=self.state.orchestrator_dir, log=self.log(),
                            connect=self.connect, task_endpoints=self.task_endpoints)

    # -- services for tasks ------------------------------------------------------
    def site_dirs(self) -> dict[str, str]:
        """Site -> its directory as its workers see it: the config's
        ``site.state_dir``, else the embedded one; ``""`` for a site-started
        site whose directory is not here (its own workers know it)."""
        from orchestrator.submit.siteconfig import SiteStartedProviderSection

        out = {}
        for site in Registry(self.state.registry_db).sites():
            config = SiteConfig.model_validate(site.config)
            embedded = self.state.site_dir(site.name)
            if config.site.state_dir:
                out[site.name] = config.site.state_dir
            elif isinstance(config.provider, SiteStartedProviderSection):
                try:
                    here = (embedded / "site.key").exists()
                except PermissionError:
                    here = False
                out[site.name] = str(embedded) if here else ""
            else:
                out[site.name] = str(embedded)
        return out

    @contextmanager
    def task_endpoints(self) -> Iterator[TaskEndpoints]:
        """Serve the log (unless the orchestrator uses a log service), the
        in-process custodians and the sealed datasets on loopback for as long as
        this is held; yield what tasks are handed."""
        from orchestrator.log.service import create_app as log_app
        from orchestrator.nation.pki import server_context as nation_context
        from orchestrator.nation.service import create_app as custodian_app
        from orchestrator.net.service import ServiceThread
        from orchestrator.net.tls import server_context
        from orchestrator.submit.objects import ObjectServer

        remote = self.remote()
        entry = load_log_entry(self.state.orchestrator_dir)
        with ExitStack() as stack:
            if entry is not None:  # the log service the orchestrator uses
                log = {"url": entry.url, "ca_pem": entry.ca.read_text()}
            else:
                log_state = LogState(self.state.log_dir)
                if not log_state.tls.exists():
                    log_state.tls.init()
                service = stack.enter_context(ServiceThread(
                    log_app(self.log()), server_context(
                        log_state.tls.server_cert, log_state.tls.server_key, None)))
                log = {"url": service.url,
                       "ca_pem": log_state.tls.ca_cert.read_text()}
            custodians: dict[str, dict[str, str]] = {}
            for code in sorted(set(remote) | set(self.state.nations())):
                if code in remote:
                    entry = remote[code]
                    custodians[code] = {"url": entry.url,
                                        "ca_pem": Path(entry.ca).read_text()}
                    continue
                nation = self.nation(code)
                service = stack.enter_context(ServiceThread(
                    custodian_app(self.custodian(code)), nation_context(nation)))
                custodians[code] = {"url": service.url,
                                    "ca_pem": nation.pki.ca_cert.read_text()}
            objects = stack.enter_context(
                ObjectServer(self.state.datasets_dir))
            yield TaskEndpoints(
                log=log, custodians=custodians, objects=objects.url,
                site_dirs=self.site_dirs())


def require_nation(deployment: Deployment, code: str) -> NationState:
    """Nation ``code`` of ``deployment``, or :class:`NotFound`."""
    nation = deployment.nation(code)
    if not nation.exists():
        raise NotFound(f"nation {code} is not initialised (sovereign nation init "
                       f"{code})")
    return nation
