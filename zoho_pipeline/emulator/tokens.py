"""OAuth refresh-token grant as ZOHO Accounts answers it, and access-token checks for the API."""

from __future__ import annotations

import secrets
import time

from .errors import ApiError

MINT_DENIED = {
    "error": "Access Denied",
    "error_description": "You have made too many requests continuously. Please try again after some time.",
}


def mint(store, config, params: dict, api_domain: str) -> tuple[int, dict, bool]:
    """Answer POST /oauth/v2/token. Returns (http status, body, minted?)."""
    if params.get("grant_type", "refresh_token") != "refresh_token":
        return 200, {"error": "unsupported_grant_type"}, False
    if params.get("client_id") != config.client_id or params.get("client_secret") != config.client_secret:
        return 200, {"error": "invalid_client"}, False
    refresh = params.get("refresh_token")
    if refresh != config.refresh_token:
        return 200, {"error": "invalid_code"}, False
    now = time.time()
    with store.lock:
        recent = [t for t in store.mints.get(refresh, []) if now - t < config.token_mint_window_s]
        if len(recent) >= config.token_mint_limit:
            store.mints[refresh] = recent
            return 400, dict(MINT_DENIED), False
        recent.append(now)
        store.mints[refresh] = recent
        token = "1000." + secrets.token_hex(16) + "." + secrets.token_hex(16)
        lifetime = config.token_lifetime
        real = config.early_token_expiry_s if config.early_token_expiry_s else lifetime
        store.tokens[token] = {"refresh_token": refresh, "expires_at": now + real}
        # forget long-dead tokens so the store does not grow without bound
        for old in [k for k, v in store.tokens.items() if v["expires_at"] < now - 86400]:
            del store.tokens[old]
        store.mark_dirty()
    return 200, {"access_token": token, "expires_in": lifetime, "api_domain": api_domain, "token_type": "Bearer"}, True


def check(store, config, header: str | None) -> None:
    """Raise the 401 ZOHO gives for a missing, unknown or expired access token (expired by time, or by use when
    `config.token_max_uses` is set; a use is an accepted call)."""
    unauthorized = ApiError(401, 57, "You are not authorized to perform this operation")
    if not header or not header.startswith("Zoho-oauthtoken "):
        raise unauthorized
    token = header[len("Zoho-oauthtoken ") :].strip()
    max_uses = config.token_max_uses
    with store.lock:
        entry = store.tokens.get(token)
        if entry is None:
            raise unauthorized
        used_up = max_uses is not None and entry.get("uses", 0) >= max_uses
        if not used_up and entry["expires_at"] > time.time():
            entry["uses"] = entry.get("uses", 0) + 1  # not saved on its own: a count, not a document
            return
    raise ApiError(401, 14, "Invalid OAuth token.")
