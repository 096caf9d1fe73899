"""Starts and stops the control cycle, the /metrics server and the REST API with the
operator (Kopf's start-up and clean-up activities), and runs the cycle: at every resync, and soon after
the cluster or an object changes (debounced)."""
from __future__ import annotations

import asyncio
import logging

import kopf

from quartermaster.operator import api, settings
from quartermaster.operator.cycle import ControlCycle
from quartermaster.operator.observe import snapshot_from_indices
from quartermaster.operator.settings import OperatorSettings
from quartermaster.operator.telemetry import Telemetry
from quartermaster.operator.wake import ChangeSignal, cycle_wanted

logger = logging.getLogger(__name__)


async def run_cycles(cycle: ControlCycle, config: OperatorSettings, wake: ChangeSignal, indices: dict) -> None:
    # Kopf starts the handlers (and so the first wake-up) once every index is filled.
    await wake.wait_after(0, None)
    while True:
        seen = wake.generation
        try:
            result = await cycle.run(snapshot_from_indices(**indices))
            logger.info("cycle: %d pools, %d workloads in %s", len(result.pools), result.workloads,
                        ", ".join(f"{stage} {seconds:.2f}s" for stage, seconds in result.timings.items()))
        except Exception:  # a bug must not stop the operator's cycles; the next one retries
            logger.exception("cycle failed")
        await wake.wait_after(seen, config.resync_seconds)
        await asyncio.sleep(config.debounce_seconds)


@kopf.on.startup()
async def start_cycle(memo: kopf.Memo, node_index, pod_index, namespace_index, pool_index, policy_index,
                      hpa_index, vpa_index, deployment_index, statefulset_index, swapplan_index, quota_index,
                      resourcequota_index, limitrange_index, priorityclass_index, **_):
    config = settings.current
    telemetry = Telemetry()
    if config.metrics_port:
        telemetry.serve(config.metrics_port, config.metrics_host)
    cycle = ControlCycle(config, telemetry=telemetry)
    telemetry.pool_statuses = cycle.pool_statuses
    if config.api_port:
        app = api.build_app(cycle.plan_statuses, lambda *asked: api.forecast_answer(cycle.latest_book, *asked),
                            api.Access(), cost=cycle.cost_answer)
        memo.api = await api.serve(app, config.api_host, config.api_port, config.api_tls_certificate,
                                   config.api_tls_key)
    indices = dict(node_index=node_index, pod_index=pod_index, namespace_index=namespace_index,
                   pool_index=pool_index, policy_index=policy_index, hpa_index=hpa_index,
                   vpa_index=vpa_index,
                   deployment_index=deployment_index, statefulset_index=statefulset_index,
                   swapplan_index=swapplan_index, quota_index=quota_index,
                   resourcequota_index=resourcequota_index, limitrange_index=limitrange_index,
                   priorityclass_index=priorityclass_index)
    memo.cycle_task = asyncio.create_task(run_cycles(cycle, config, cycle_wanted, indices), name="control cycle")


@kopf.on.cleanup()
async def stop_cycle(memo: kopf.Memo, **_):
    task = memo.get("cycle_task")
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    if memo.get("api") is not None:
        await memo.api.cleanup()
