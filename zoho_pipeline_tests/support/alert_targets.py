"""Alert targets for tests: a tiny SMTP server and an HTTP webhook receiver on free local ports, and `env`, the
alert settings pointing at both (with secrets in the environment that must never leave). Registered as fixtures
by the root conftest (pytest_plugins), so any test asks for `smtp_server`, `webhook_server`, `env`."""

from __future__ import annotations

import email
import email.policy
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

SECRET = "s3cr3t-ZOHO-refresh-9a7e"
SMTP_PASSWORD = "smtp-pa55-word"


# --- a tiny SMTP server: EHLO/HELO, AUTH PLAIN/LOGIN (accepted), MAIL, RCPT, DATA, RSET, NOOP, QUIT ------------


class _SMTPHandler(socketserver.StreamRequestHandler):
    def reply(self, line: str) -> None:
        self.wfile.write((line + "\r\n").encode())

    def handle(self):
        self.reply("220 localhost test SMTP")
        envelope = {"from": None, "to": [], "auth": None}
        while True:
            raw = self.rfile.readline()
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            cmd = line.split(" ", 1)[0].upper()
            if cmd in ("EHLO", "HELO"):
                self.wfile.write(b"250-localhost\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n")
            elif cmd == "AUTH":
                envelope["auth"] = line
                self.reply("235 2.7.0 Authentication successful")
            elif cmd == "MAIL":
                envelope["from"] = line.split(":", 1)[1].strip()
                self.reply("250 OK")
            elif cmd == "RCPT":
                envelope["to"].append(line.split(":", 1)[1].strip())
                self.reply("250 OK")
            elif cmd == "DATA":
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                chunks = []
                while True:
                    data = self.rfile.readline()
                    if data in (b".\r\n", b".\n", b""):
                        break
                    chunks.append(data[1:] if data.startswith(b"..") else data)
                self.server.messages.append({**envelope, "data": b"".join(chunks)})
                envelope = {"from": None, "to": [], "auth": envelope["auth"]}
                self.reply("250 OK queued")
            elif cmd in ("RSET", "NOOP"):
                self.reply("250 OK")
            elif cmd == "QUIT":
                self.reply("221 Bye")
                return
            else:
                self.reply("502 Command not implemented")


class _SMTPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def smtp_server():
    server = _SMTPServer(("127.0.0.1", 0), _SMTPHandler)
    server.messages = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def webhook_server():
    received = []
    status = {"code": 200}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            received.append({"path": self.path, "headers": dict(self.headers), "body": body})
            self.send_response(status["code"])
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.received = received
    server.status = status
    server.url = f"http://127.0.0.1:{server.server_address[1]}/hook/{SECRET}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def env(monkeypatch, smtp_server, webhook_server):
    for k in list(__import__("os").environ):
        if k.startswith("ALERT_"):
            monkeypatch.delenv(k)
    values = {
        "ALERT_SMTP_HOST": "127.0.0.1",
        "ALERT_SMTP_PORT": str(smtp_server.server_address[1]),
        "ALERT_SMTP_USER": "alerts@example.co.za",
        "ALERT_SMTP_PASSWORD": SMTP_PASSWORD,
        "ALERT_SMTP_STARTTLS": "false",
        "ALERT_EMAIL_FROM": "zoho-pipeline@example.co.za",
        "ALERT_EMAIL_TO": "ops@example.co.za, finance@example.co.za",
        "ALERT_WEBHOOK_URL": webhook_server.url,
        "ZOHO_REFRESH_TOKEN": SECRET,
        "ZOHO_CLIENT_SECRET": "client-secret-5f1c",
        "SOME_API_TOKEN": "tok-abcdef",
    }
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return values


def _parse(message: dict):
    return email.message_from_bytes(message["data"], policy=email.policy.default)


def _everything_sent(smtp_server, webhook_server) -> str:
    parts = [m["data"].decode("utf-8", "replace") for m in smtp_server.messages]
    for m in smtp_server.messages:
        msg = _parse(m)
        parts += [p.get_content() for p in msg.iter_parts()] + [str(msg["Subject"])]
    parts += [r["body"].decode() for r in webhook_server.received]
    return "\n".join(parts)
