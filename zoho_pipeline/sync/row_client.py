"""The client as one row's work sees it: the same calls, counted, so each attempt logs what it cost."""

from __future__ import annotations


class RowClient:
    def __init__(self, client):
        self._client = client
        self.calls = 0

    def get(self, path, params=None):
        self.calls += 1
        return self._client.get(path, params=params)

    def post(self, path, json=None, params=None):
        self.calls += 1
        return self._client.post(path, json=json, params=params)

    def put(self, path, json=None):
        self.calls += 1
        return self._client.put(path, json=json)

    def iter_list(self, path, key, params=None, per_page=200):
        """Pages through a list; each page is one counted call."""
        page = 1
        while True:
            body = self.get(path, params={**(params or {}), "page": page, "per_page": per_page})
            yield from body.get(key) or []
            if not (body.get("page_context") or {}).get("has_more_page"):
                return
            page += 1
