"""The REST API's answers without a cluster: the reviews and the approval are stand-ins."""
import asyncio

from aiohttp.test_utils import TestClient, TestServer
from kubernetes.client.exceptions import ApiException

from quartermaster.operator.api import build_app


class Approver:
    """Every token is an approver's."""

    async def user(self, token: str) -> dict:
        return {"username": "approver"}

    async def allowed(self, user: dict, verb: str) -> bool:
        return True


def test_an_approval_the_apiserver_refuses_is_a_503_that_says_so():
    async def refused(name: str, plan_id: str) -> None:
        raise ApiException(status=403, reason="Forbidden")

    async def post() -> tuple[int, dict]:
        app = build_app(lambda: {"p": {"planId": "abc"}}, lambda *a: None, Approver(), approve=refused)
        async with TestClient(TestServer(app)) as api:
            answer = await api.post("/swap_request", json={"plan": "p", "approve": "abc"},
                                    headers={"Authorization": "Bearer t"})
            return answer.status, await answer.json()

    status, body = asyncio.run(post())
    assert status == 503 and "403 Forbidden" in body["message"]
