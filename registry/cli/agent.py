"""``chipreg agent``: the host agent operators run next to their accelerators.

The agent discovers the accelerators (NVML on NVIDIA hosts; a simulated backend elsewhere),
signs one usage report per accelerator and window, spools it durably, and posts spooled reports
in batches, deleting each only after the registry acknowledged it. Each flush waits a random
jitter first, so a fleet does not post at the same instant; each window ends with one log line
(reports signed, posted, accepted, rejected, spooled).

  chipreg agent run --registry https://registry.example --metrics-port 9400
  chipreg agent status                      # spool depth, last success, chain heads
  chipreg agent run --offline /media/usb    # air-gapped: signed reports to files only
  chipreg agent upload /media/usb --registry https://registry.example   # later, elsewhere
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import logging
import os
import secrets
import signal
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agents.agent import Agent, FlushStats, default_jitter, flush_spool
from agents.backends.base import AcceleratorBackend
from agents.backends.nvml import NvmlBackend
from agents.backends.simulated import SimulatedAccelerator, SimulatedBackend, Workload
from agents.chain import ChainState
from agents.client import RegistryClient, check_registry_url
from agents.errors import AgentError, GpuEvidenceUnavailable, RegistryRejected, TransportError
from agents.metrics import AgentMetrics
from agents.spool import Spool
from agents.status import STATUS_FILE, read_status
from attestation.errors import GpuEvidenceError
from attestation.gpu import load_gpu_root, verify_gpu_evidence
from attestation.keys import PrivateKey
from registry.cli.render import table
from registry.settings import Settings

__all__ = ["FACILITY_ENV", "add_parser"]

FACILITY_ENV = "CHIPREG_AGENT_FACILITY_ID"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "agent",
        help="the host agent: discover accelerators, sign, spool and post usage reports",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmds = p.add_subparsers(dest="agent_command", required=True, metavar="COMMAND")

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--backend", choices=["nvml", "simulated"], default="nvml")
        q.add_argument(
            "--state-dir",
            type=Path,
            default=Path("var/agent"),
            help="spool, chain state and (nvml) chip keys live here",
        )
        q.add_argument(
            "--simulated-chips", type=int, default=4, help="simulated backend: how many chips"
        )
        q.add_argument(
            "--facility-id",
            type=int,
            default=None,
            metavar="ID",
            help=(
                "registry id of the facility this host is in; every report then claims it "
                f"(signed by the chip). Default: ${FACILITY_ENV} if set, else no claim"
            ),
        )

    def remote(q: argparse.ArgumentParser, *, required: bool = True) -> None:
        q.add_argument("--registry", required=required, help="registry base URL")
        q.add_argument(
            "--token-env",
            default="CHIPREG_AGENT_TOKEN",
            help="environment variable that holds the operator API token",
        )

    q = cmds.add_parser("discover", help="list the accelerators the backend finds, with keys")
    common(q)
    q.set_defaults(func=_discover)

    q = cmds.add_parser("keygen", help="create missing per-chip keys (nvml backend)")
    common(q)
    q.set_defaults(func=_keygen)

    q = cmds.add_parser(
        "gpu-evidence",
        help="ask one NVIDIA GPU for SPDM device evidence over a nonce (nvml), print it",
        description=(
            "Calls NVML's confidential-computing attestation (report and certificate chain) "
            "for one GPU and prints the evidence as JSON, or the reason it cannot be had "
            "(no_nvml, old_bindings, old_driver, cc_off, not_supported). With --root, also "
            "verifies it as the registry would (docs/PROTOCOL.md section 11). Needs no chip key."
        ),
    )
    q.add_argument("--chip-id", required=True, help="the GPU, as `agent discover` names it")
    q.add_argument("--nonce", default=None, help="32-byte SPDM nonce, hex (default: random)")
    q.add_argument("--root", type=Path, default=None, help="PEM of the GPU root to verify against")
    q.add_argument("--state-dir", type=Path, default=Path("var/agent"))
    q.set_defaults(func=_gpu_evidence)

    q = cmds.add_parser("dry-run", help="print the statements the next window would send")
    common(q)
    q.add_argument("--window-minutes", type=int, default=15)
    q.set_defaults(func=_dry_run)

    q = cmds.add_parser("flush", help="post every spooled report now")
    common(q)
    remote(q)
    q.set_defaults(func=_flush)

    q = cmds.add_parser("run", help="report every window until stopped (SIGINT/SIGTERM)")
    common(q)
    remote(q, required=False)
    q.add_argument("--window-minutes", type=int, default=15)
    q.add_argument(
        "--offline",
        type=Path,
        metavar="DIR",
        help="air-gapped site: write the signed reports to DIR (spool format) and post "
        "nothing; carry DIR out and run `chipreg agent upload DIR`. Instead of --registry",
    )
    q.add_argument(
        "--jitter-seconds",
        type=float,
        default=None,
        metavar="S",
        help="wait a random 0..S seconds before each window's flush (default: a tenth of the "
        "window, at most 60)",
    )
    q.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="PORT",
        help="serve Prometheus metrics on PORT (DCGM_FI_DEV_* names like dcgm-exporter, "
        "plus chipreg_agent_*)",
    )
    q.add_argument("--metrics-address", default="127.0.0.1", help="address for --metrics-port")
    q.set_defaults(func=_run)

    q = cmds.add_parser("upload", help="post the reports of an --offline directory (idempotent)")
    q.add_argument("directory", type=Path, metavar="DIR", help="written by `agent run --offline`")
    remote(q)
    q.set_defaults(func=_upload)

    q = cmds.add_parser("status", help="spool depth, last success and chain heads of an agent")
    q.add_argument("--state-dir", type=Path, default=Path("var/agent"), help="the agent's")
    q.add_argument("--offline", type=Path, metavar="DIR", help="the agent spools to DIR")
    q.add_argument("-o", "--output", choices=["table", "json"], default="table")
    q.set_defaults(func=_status)


def _backend(args: argparse.Namespace) -> AcceleratorBackend:
    if args.backend == "nvml":
        return NvmlBackend(args.state_dir / "keys")
    chips = []
    for i in range(args.simulated_chips):
        # Deterministic per state dir, so restarts keep the same identities.
        seed = hashlib.sha256(f"{args.state_dir.resolve()}:{i}".encode()).digest()
        chips.append(
            SimulatedAccelerator(
                f"SIM-H100-{i:04d}",
                "H100-SXM5-80GB",
                PrivateKey.from_seed(seed),
                Workload(utilization=0.5, power_w=350.0),
            )
        )
    return SimulatedBackend(chips)


def _facility_id(args: argparse.Namespace) -> int | None:
    """``--facility-id``, else ``$CHIPREG_AGENT_FACILITY_ID``, else no facility claim."""
    if args.facility_id is not None:
        return int(args.facility_id)
    raw = os.environ.get(FACILITY_ENV, "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        msg = f"${FACILITY_ENV} must be a facility id (an integer), got {raw!r}"
        raise AgentError(msg) from None


def _agent(
    args: argparse.Namespace,
    client: RegistryClient | None,
    *,
    jitter_s: float = 0.0,
    metrics: AgentMetrics | None = None,
) -> Agent:
    facility_id = _facility_id(args)
    offline: Path | None = getattr(args, "offline", None)
    spool = Spool(offline or args.state_dir / "spool")
    chain = ChainState.load(args.state_dir / "chain.json", spool)
    return Agent(
        _backend(args),
        spool,
        chain,
        client,
        facility_id=facility_id,
        jitter_s=jitter_s,
        metrics=metrics,
        status_file=args.state_dir / STATUS_FILE,
    )


def _client(args: argparse.Namespace) -> RegistryClient:
    token = os.environ.get(args.token_env, "")
    if not token:
        msg = f"set the operator API token in ${args.token_env}"
        raise AgentError(msg)
    return RegistryClient(check_registry_url(args.registry), token)


def _preflight(client: RegistryClient, args: argparse.Namespace, facility_id: int | None) -> None:
    """Fail at start, not at the first window close, on a token or facility the registry
    refuses. An unreachable registry is only a warning: reports spool until it is back."""
    checks = [(f"the token in ${args.token_env}", client.check_token)]
    if facility_id is not None:
        checks.append((f"facility {facility_id}", lambda: client.check_facility(facility_id)))
    for what, check in checks:
        try:
            check()
        except RegistryRejected as exc:
            msg = (
                f"the registry at {args.registry} refused {what}: "
                f"{exc.status} {exc.code}: {exc.detail}"
            )
            raise AgentError(msg) from exc
        except TransportError as exc:
            print(
                f"chipreg agent: warning: cannot check {what} now ({exc}); reports spool "
                "until the registry answers",
                file=sys.stderr,
                flush=True,
            )
            return


def _discover(args: argparse.Namespace, _settings: Settings) -> int:
    try:
        found = _backend(args).discover()
    except AgentError as exc:
        print(f"chipreg agent: {exc}", file=sys.stderr)
        return 1
    for acc in found:
        print(
            json.dumps(
                {"chip_id": acc.chip_id, "model": acc.model, "public_key": acc.public_key.to_b64()}
            )
        )
    return 0


def _keygen(args: argparse.Namespace, _settings: Settings) -> int:
    if args.backend != "nvml":
        print(
            "chipreg agent keygen: only the nvml backend keeps chip keys on disk", file=sys.stderr
        )
        return 2
    try:
        keys = NvmlBackend(args.state_dir / "keys").provision_keys()
    except AgentError as exc:
        print(f"chipreg agent: {exc}", file=sys.stderr)
        return 1
    for chip_id, key in sorted(keys.items()):
        print(json.dumps({"chip_id": chip_id, "public_key": key.to_b64(), "key_id": key.key_id}))
    return 0


def _gpu_evidence(args: argparse.Namespace, _settings: Settings) -> int:
    try:
        nonce = secrets.token_bytes(32) if args.nonce is None else bytes.fromhex(args.nonce)
    except ValueError:
        nonce = b""
    if len(nonce) != 32:
        print("chipreg agent gpu-evidence: --nonce must be 64 hex digits")
        return 2
    try:
        evidence = NvmlBackend(args.state_dir / "keys").attestation_evidence(args.chip_id, nonce)
    except GpuEvidenceUnavailable as exc:
        print(
            json.dumps(
                {
                    "chip_id": args.chip_id,
                    "available": False,
                    "reason": exc.reason,
                    "detail": str(exc),
                }
            )
        )
        return 1
    out: dict[str, object] = {
        "chip_id": args.chip_id,
        "available": True,
        "nonce": nonce.hex(),
        "report": base64.b64encode(evidence.report).decode(),
        "certificates": [base64.b64encode(c).decode() for c in evidence.cert_chain],
    }
    if args.root is not None:
        try:
            claims = verify_gpu_evidence(
                evidence.report,
                evidence.cert_chain,
                root=load_gpu_root(args.root.read_bytes()),
                expected_nonce=nonce,
                at=datetime.now(UTC),
            )
            out["verified"] = {
                "hardware_id": claims.hardware_id,
                "device_serial": claims.device_serial,
                "hardware_model": claims.hardware_model,
                "driver_version": claims.driver_version,
                "vbios_version": claims.vbios_version,
            }
        except GpuEvidenceError as exc:
            out["verified"] = {"error": exc.code, "detail": str(exc)}
    print(json.dumps(out))
    return 0


def _window(minutes: int) -> tuple[datetime, datetime]:
    if not 1 <= minutes <= 1440:
        raise AgentError("--window-minutes must be between 1 and 1440")
    end = datetime.now(UTC).replace(microsecond=0)
    return end - timedelta(minutes=minutes), end


def _dry_run(args: argparse.Namespace, _settings: Settings) -> int:
    try:
        start, end = _window(args.window_minutes)
        statements = _agent(args, None).dry_run(start, end)
    except AgentError as exc:
        print(f"chipreg agent: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(statements, indent=2, sort_keys=True))
    return 0


def _flush(args: argparse.Namespace, _settings: Settings) -> int:
    try:
        with _client(args) as client:
            stats = _agent(args, client).flush()
    except AgentError as exc:
        print(f"chipreg agent: {exc}", file=sys.stderr)
        return 1
    return _print_flush(stats)


def _print_flush(stats: FlushStats) -> int:
    print(
        json.dumps(
            {
                "sent": stats.sent,
                "acknowledged": stats.acknowledged,
                "rejected": stats.rejected,
                "interrupted_by": str(stats.interrupted_by) if stats.interrupted_by else None,
            }
        )
    )
    return 0 if stats.interrupted_by is None else 1


def _upload(args: argparse.Namespace, _settings: Settings) -> int:
    if not args.directory.is_dir():
        print(f"chipreg agent: {args.directory} is not a directory", file=sys.stderr)
        return 2
    try:
        with _client(args) as client:
            stats = flush_spool(Spool(args.directory), client)
    except AgentError as exc:
        print(f"chipreg agent: {exc}", file=sys.stderr)
        return 1
    return _print_flush(stats)


def _status(args: argparse.Namespace, _settings: Settings) -> int:
    if not (args.state_dir / "chain.json").exists() and not (args.state_dir / "spool").is_dir():
        print(f"chipreg agent: no agent state in {args.state_dir}", file=sys.stderr)
        return 2
    try:
        status = read_status(args.state_dir, args.offline)
    except AgentError as exc:
        print(f"chipreg agent: {exc}", file=sys.stderr)
        return 1
    if args.output == "json":
        print(json.dumps(status.to_dict(), indent=2, sort_keys=True))
        return 0
    w = status.last_window
    print(f"spool depth:      {status.spool_depth} report(s) waiting")
    print(f"rejected:         {status.rejected_reports} report(s) in rejected/")
    print(f"last success:     {status.last_success or 'never'}")
    print(f"last error:       {status.last_error or '-'}")
    if w is not None:
        print(
            f"last window:      {w.window_start}..{w.window_end}: {w.signed} signed, "
            f"{w.posted} posted, {w.accepted} accepted, {w.rejected} rejected, "
            f"{w.spooled} spooled"
        )
    rows = [[c, h["seq"], h["window_end"], str(h["digest"])[:16]] for c, h in status.chains.items()]
    print("\n" + table(["chip", "seq", "last window end", "head digest"], rows))
    return 0


def _run(args: argparse.Namespace, _settings: Settings) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    metrics_server = None
    try:
        if not 1 <= args.window_minutes <= 1440:
            raise AgentError("--window-minutes must be between 1 and 1440")
        if (args.registry is None) == (args.offline is None):
            raise AgentError("give either --registry URL or --offline DIR")
        interval = timedelta(minutes=args.window_minutes)
        jitter = default_jitter(interval) if args.jitter_seconds is None else args.jitter_seconds
        metrics = None
        if args.metrics_port is not None:
            metrics = AgentMetrics()
            try:
                metrics_server = metrics.serve(args.metrics_port, args.metrics_address)
            except OSError as exc:
                raise AgentError(
                    f"cannot serve metrics on port {args.metrics_port}: {exc}"
                ) from exc
        client = None if args.offline else _client(args)
        if client is not None:
            _preflight(client, args, _facility_id(args))
        agent = _agent(args, client, jitter_s=jitter, metrics=metrics)
        where = f"to {args.registry}" if client else f"to files in {args.offline} (offline)"
        logging.getLogger("agents").info(
            "reporting %d accelerators every %d min %s, flush jitter up to %g s%s",
            len(agent.backend.discover()),
            args.window_minutes,
            where,
            jitter,
            f", metrics on :{metrics_server.port}" if metrics_server else "",
        )
        try:
            agent.run(interval, stop)
        finally:
            if client is not None:
                client.close()
    except AgentError as exc:
        print(f"chipreg agent: {exc}", file=sys.stderr)
        return 1
    finally:
        if metrics_server is not None:
            metrics_server.close()
    return 0
