"""The operator's REST API (aiohttp, in the operator's own event loop): forecasts, swap
histories and swap requests, for tools that would rather not read statuses.

    GET  /openapi.json                                   the API's description (no token needed)
    GET  /prediction?namespace=&workload=&resource=      a workload's forecast quantiles at
                                                         5, 15, 30 and 60 minutes, confidence, tier
    GET  /swap_history?plan=                             a SwapPlan's phases and its steps'
                                                         requests before and after
    POST /swap_request {"plan": NAME, "approve": PLANID} approve the plan in status (as the
                                                         annotation quartermaster.dev/approve does)
    GET  /cost?window=today|month|7d&aggregate=namespace|workload|pool
                                                         cost per group over the window, shaped
                                                         like OpenCost's /allocation

Authentication and authorisation as kube-rbac-proxy does them: the bearer token is checked
with a TokenReview, then a SubjectAccessReview asks whether its user may `get` swapplans
(reads) or `patch` them (POST). No token or a token the apiserver does not know: 401;
known but not allowed: 403. Bad input: 400 with a message; an unknown plan or workload:
404; an approval of a plan that is not the one in status: 409; no cost read yet (no
Prometheus): 503 saying why.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import ssl
from typing import Callable, Mapping, Optional

from aiohttp import web
from kubernetes import client
from kubernetes.client import ApiException

from quartermaster.operator.cost import AGGREGATES
from quartermaster.operator.kube import api_client
from quartermaster.operator.models import GROUP, VERSION, SwapPhase, SwapPlan
from quartermaster.operator.swapplan import APPROVE_ANNOTATION

logger = logging.getLogger(__name__)
HORIZONS_MINUTES = (5, 15, 30, 60)
RESOURCES = ("cpu", "memory")


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": _REASONS[status], "message": message}, status=status)


_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "Conflict",
            503: "ServiceUnavailable"}


class Access:
    """TokenReview and SubjectAccessReview through the operator's own client."""

    def __init__(self, api: Optional[client.ApiClient] = None) -> None:
        self._api = api

    async def user(self, token: str) -> Optional[dict]:
        review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
        answer = await asyncio.to_thread(client.AuthenticationV1Api(self._api or api_client()).create_token_review,
                                         review)
        status = answer.status
        if not status or not status.authenticated:
            return None
        return {"username": status.user.username, "uid": status.user.uid, "groups": status.user.groups or [],
                "extra": status.user.extra or {}}

    async def allowed(self, user: dict, verb: str) -> bool:
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {
            "user": user["username"], "uid": user["uid"], "groups": user["groups"], "extra": user["extra"],
            "resourceAttributes": {"group": GROUP, "version": VERSION, "resource": SwapPlan.plural, "verb": verb}}}
        answer = await asyncio.to_thread(
            client.AuthorizationV1Api(self._api or api_client()).create_subject_access_review, review)
        return bool(answer.status and answer.status.allowed)


@web.middleware
async def _json_errors(request: web.Request, handler):
    """aiohttp's own refusals (an unknown path, a wrong method) in the API's JSON shape."""
    try:
        return await handler(request)
    except web.HTTPException as refusal:
        if refusal.status < 400:
            raise
        return web.json_response({"error": refusal.reason.replace(" ", ""),
                                  "message": f"{request.method} {request.path}: {refusal.reason}"},
                                 status=refusal.status)


@web.middleware
async def _authorised(request: web.Request, handler):
    if request.path == "/openapi.json":
        return await handler(request)
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer ") or not header[7:].strip():
        return _error(401, "a bearer token is needed (Authorization: Bearer <token>)")
    access: Access = request.app["access"]
    try:
        user = await access.user(header[7:].strip())
        if user is None:
            return _error(401, "the token is not valid")
        verb = "get" if request.method == "GET" else "patch"
        if not await access.allowed(user, verb):
            return _error(403, f"{user['username']} may not {verb} {SwapPlan.plural}.{GROUP}")
    except ApiException as failure:
        logger.warning("token or access review failed: %s %s", failure.status, failure.reason)
        return _error(503, f"the apiserver did not answer the review: {failure.reason}")
    return await handler(request)


def build_app(plans: Callable[[], Mapping[str, Mapping]], forecast: Callable[..., Optional[dict]],
              access: Access, approve: Optional[Callable] = None,
              cost: Optional[Callable[[str, str], dict | str]] = None) -> web.Application:
    """The API over the cycle's view: `plans()` each SwapPlan's status by name,
    `forecast(namespace, workload, resource)` a forecast answer; `approve(name, plan_id)`
    annotates a plan (the operator's own patch by default); `cost(window, aggregate)` the
    /cost answer, or why there is none (ValueError for bad input)."""
    app = web.Application(middlewares=[_json_errors, _authorised])
    app["access"] = access
    approve = approve or _annotate_approval

    async def openapi(_: web.Request) -> web.Response:
        return web.json_response(OPENAPI)

    async def prediction(request: web.Request) -> web.Response:
        query = request.query
        missing = [k for k in ("namespace", "workload", "resource") if not query.get(k)]
        if missing:
            return _error(400, f"missing query parameter(s): {', '.join(missing)}")
        if query["resource"] not in RESOURCES:
            return _error(400, f"resource must be one of {', '.join(RESOURCES)}, got {query['resource']!r}")
        answer = forecast(query["namespace"], query["workload"], query["resource"])
        if answer is None:
            return _error(404, f"no forecast of {query['resource']} for {query['workload']} in {query['namespace']} "
                               f"(workload is Kind/name or name, and must belong to a pool or a policy)")
        return web.json_response(answer)


    async def swap_history(request: web.Request) -> web.Response:
        name = request.query.get("plan")
        if not name:
            return _error(400, "missing query parameter: plan")
        status = plans().get(name)
        if status is None:
            return _error(404, f"no SwapPlan named {name!r}")
        steps = (status.get("execution") or {}).get("steps") or []
        # a plan the cycle has seen but not yet decided on is Pending, as its status will say
        return web.json_response({"plan": name, "phase": status.get("phase", SwapPhase.PENDING.value),
                                  "planId": status.get("planId"),
                                  "history": status.get("history") or [],
                                  "steps": [{k: s.get(k) for k in ("workload", "state", "before", "after", "since")}
                                            for s in steps]})

    async def swap_request(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "the body must be JSON: {\"plan\": NAME, \"approve\": PLANID}")
        if not isinstance(body, dict) or not isinstance(body.get("plan"), str) or not isinstance(body.get("approve"), str):
            return _error(400, "the body must be an object with the strings plan and approve")
        unknown = sorted(set(body) - {"plan", "approve"})
        if unknown:
            return _error(400, f"unknown field(s): {', '.join(unknown)}")
        name = body["plan"]
        status = plans().get(name)
        if status is None:
            return _error(404, f"no SwapPlan named {name!r}")
        if status.get("planId") != body["approve"]:
            return _error(409, f"plan {body['approve']!r} is not the one in status "
                               f"({status.get('planId') or 'none yet'}): approve the current plan")
        try:
            await approve(name, body["approve"])
        except ApiException as failure:  # the operator's own patch refused: say so, not a 500
            logger.warning("approving %s failed: %s %s", name, failure.status, failure.reason)
            return _error(503, f"the apiserver refused the approval annotation: {failure.status} {failure.reason}")
        return web.json_response({"plan": name, "approved": body["approve"]}, status=202)

    async def cost_report(request: web.Request) -> web.Response:
        window = request.query.get("window")
        if not window:
            return _error(400, "missing query parameter: window (today, month or a duration such as 7d)")
        try:
            answer = cost(window, request.query.get("aggregate", "namespace")) if cost else "cost is not served"
        except ValueError as bad:
            return _error(400, str(bad))
        return _error(503, answer) if isinstance(answer, str) else web.json_response(answer)

    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/cost", cost_report)
    app.router.add_get("/prediction", prediction)
    app.router.add_get("/swap_history", swap_history)
    app.router.add_post("/swap_request", swap_request)
    return app


async def _annotate_approval(name: str, plan_id: str) -> None:
    api = client.CustomObjectsApi(api_client())
    await asyncio.to_thread(api.patch_cluster_custom_object, GROUP, VERSION, SwapPlan.plural, name,
                            {"metadata": {"annotations": {APPROVE_ANNOTATION: plan_id}}})


def forecast_answer(book, namespace: str, workload: str, resource: str) -> Optional[dict]:
    """A workload's forecast from the cycle's book: each quantile at the horizons the
    forecast reaches. `workload` is Kind/name, or a name that one workload has."""
    if book is None:
        return None
    kind, _, name = workload.rpartition("/")
    matches = [k for k in book.rows if k[0] == "workload" and k[2] == resource and k[1].namespace == namespace
               and k[1].name == name and (not kind or k[1].kind == kind)]
    if len(matches) != 1:
        return None
    row = book.rows[matches[0]]
    steps = book.forecasts.values.shape[-1]
    points = {}
    for minutes in HORIZONS_MINUTES:
        index = math.ceil(minutes * 60 / book.step) - 1
        if index < steps:
            points[f"{minutes}m"] = {f"p{round(q * 100)}": float(book.forecasts.values[row, i, index])
                                     for i, q in enumerate(book.forecasts.quantiles)}
    key = matches[0][1]
    return {"namespace": namespace, "workload": f"{key.kind}/{key.name}", "resource": resource,
            "unit": "cores" if resource == "cpu" else "bytes", "at": book.end, "forecast": points,
            "confidence": float(book.forecasts.confidence[row]), "tier": book.forecasts.tier[row],
            "model": book.forecasts.model[row]}


async def serve(app: web.Application, host: str, port: int, certificate: Optional[str] = None,
                key: Optional[str] = None) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    context = None
    if certificate:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certificate, key)
    await web.TCPSite(runner, host, port, ssl_context=context).start()
    return runner


def _parameter(name: str, description: str, enum=None) -> dict:
    schema = {"type": "string", "minLength": 1, **({"enum": list(enum)} if enum else {})}
    return {"name": name, "in": "query", "required": True, "description": description, "schema": schema}


_ERRORS = {str(code): {"description": reason, "content": {"application/json": {"schema": {
    "$ref": "#/components/schemas/Error"}}}} for code, reason in _REASONS.items()}
OPENAPI = {
    "openapi": "3.0.3",
    "info": {"title": "Quartermaster", "version": "v1alpha1",
             "description": "Forecasts, swaps and cost. Bearer tokens of the cluster; reads need get on "
                            "swapplans.quartermaster.dev, POST needs patch."},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {"Error": {"type": "object", "required": ["error", "message"],
                              "properties": {"error": {"type": "string"}, "message": {"type": "string"}}}}},
    "security": [{"bearer": []}],
    "paths": {
        "/prediction": {"get": {
            "summary": "A workload's forecast quantiles at 5, 15, 30 and 60 minutes",
            "parameters": [_parameter("namespace", "the workload's namespace"),
                           _parameter("workload", "Kind/name, or a name"),
                           _parameter("resource", "what is forecast", RESOURCES)],
            "responses": {"200": {"description": "the forecast"}, **_ERRORS}}},
        "/swap_history": {"get": {
            "summary": "A SwapPlan's phases and its steps' requests before and after",
            "parameters": [_parameter("plan", "the SwapPlan's name")],
            "responses": {"200": {"description": "the history"}, **_ERRORS}}},
        "/swap_request": {"post": {
            "summary": "Approve the plan in a SwapPlan's status",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["plan", "approve"], "additionalProperties": False,
                "properties": {"plan": {"type": "string"}, "approve": {"type": "string"}}}}}},
            "responses": {"202": {"description": "approved"}, **_ERRORS}}},
        "/cost": {"get": {
            "summary": "Cost per namespace, workload or pool over a window, as OpenCost's /allocation: "
                       "max(request, usage) x price",
            "parameters": [_parameter("window", "today, month (UTC calendar, to now), or a duration back from now: "
                                                "30m, 12h, 7d"),
                           {**_parameter("aggregate", "what to group by", AGGREGATES),
                            "required": False}],
            "responses": {"200": {"description": '{"code": 200, "data": [{name: {name, cpuCost, ramCost, gpuCost, '
                                                 'totalCost, cpuCoreRequestAverage, ..., start, end, window}}]}'},
                          **_ERRORS}}},
    },
}
