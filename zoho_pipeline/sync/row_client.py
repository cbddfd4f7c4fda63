"""The client as one row's work sees it: the same calls, counted, so each attempt logs what it cost."""

from __future__ import annotations

from zoho_pipeline.zoho.client import ZohoClient


class RowClient:
    def __init__(self, client):
        self._client = client
        self.calls = 0

    def request(self, method, path, *, params=None, json=None):
        self.calls += 1
        return self._client.request(method, path, params=params, json=json)

    # the verbs and paging are the client's own, running over the counting `request` above
    get, post, put, delete, iter_list = (
        ZohoClient.get,
        ZohoClient.post,
        ZohoClient.put,
        ZohoClient.delete,
        ZohoClient.iter_list,
    )
