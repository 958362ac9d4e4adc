"""A second, independent Yjs implementation (pycrdt = Rust yrs) as a y-websocket client of relayd.

Usage: pycrdt_client.py <json-config> <mode>
  mode "append": connects, waits for the document, appends cfg["append"] to text "t", waits for the echo.
  mode "read": connects and prints the text.
Prints {"text": …} on stdout.
"""
import asyncio, base64, hashlib, hmac, json, sys, time
from pycrdt import Doc, Text, Provider
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

cfg = json.loads(sys.argv[1])
mode = sys.argv[2]

def b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

def token(user: str) -> str:
    sid, now = cfg["site_id"], int(time.time())
    claims = {"site_id": sid, "user_id": user, "v": 2, "iat": now, "exp": now + 300,
              "allowed_channel_prefixes": [f"site:{sid}:yjs:"], "allowed_publish_prefixes": [f"site:{sid}:yjs:"]}
    h = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()); p = b64url(json.dumps(claims).encode())
    s = hmac.new(cfg["jwt_secret"].encode(), f"{h}.{p}".encode(), hashlib.sha256).digest()
    return f"{h}.{p}.{b64url(s)}"

class Channel:
    def __init__(self, ws, path):
        self.ws, self._path = ws, path
    @property
    def path(self):
        return self._path
    def __aiter__(self):
        return self
    async def __anext__(self):
        try:
            return await self.recv()
        except ConnectionClosed:
            raise StopAsyncIteration
    async def send(self, message: bytes):
        await self.ws.send(message)
    async def recv(self) -> bytes:
        m = await self.ws.recv()
        return m if isinstance(m, bytes) else m.encode()

async def main():
    url = cfg["url"].replace("http", "ws", 1) + "/yjs/" + cfg["room"] + "?auth=" + token("py")
    doc = Doc()
    doc["t"] = text = Text()
    async with connect(url, open_timeout=5) as ws:
        async with Provider(doc, Channel(ws, cfg["room"])):
            end = time.time() + 5
            want = cfg.get("expect_prefix", "")
            while time.time() < end and not str(text).startswith(want):
                await asyncio.sleep(0.05)
            if mode == "append":
                text += cfg["append"]
                await asyncio.sleep(0.5)
            print(json.dumps({"text": str(text)}))

asyncio.run(asyncio.wait_for(main(), 15))
