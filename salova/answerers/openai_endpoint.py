"""An OpenAI-compatible chat server answering: Ollama, llama.cpp's server, vLLM, or any ``/v1`` endpoint.

One ``POST {url}/chat/completions`` per question (stdlib HTTP, no client package): the system text, then the
user turn as text parts with the frames as ``image_url`` parts holding base64 JPEG data URLs. Greedy decoding
(``temperature`` 0). Without a model name, the first model ``GET {url}/models`` lists is used. An API key, if
the server wants one, comes from ``SALOVA_ANSWERER_API_KEY`` (else ``OPENAI_API_KEY``).
"""

from __future__ import annotations

import base64
import io
import json
import os
import urllib.error
import urllib.request

import numpy as np

from salova.answerers.base import Answerer, AnswerRequest
from salova.answerers.prompt import build_prompt
from salova.errors import AnswererError, option_problem


class OpenAIEndpointAnswerer(Answerer):
    kind = "openai"
    reads_frames = True

    def __init__(self, url: str, model: str | None = None, *, images: bool = True, timeout_s: float = 600.0,
                 api_key: str | None = None):
        self.url = url.rstrip("/")
        self.images = images  # False for text-only models: the frames are left out of the request
        self.timeout_s = timeout_s
        self.api_key = api_key or os.environ.get("SALOVA_ANSWERER_API_KEY") or os.environ.get("OPENAI_API_KEY")
        self.name = model or self._first_model()

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.name}@{self.url}"

    def messages(self, request: AnswerRequest) -> list[dict]:
        frames = [f for m in request.moments for f in m.frames]
        prompt = build_prompt(request, images=self.images)
        content = [{"type": "text", "text": p.text} if p.kind == "text"
                   else {"type": "image_url", "image_url": {"url": jpeg_data_url(frames[p.image])}}
                   for p in prompt.parts]
        return [{"role": "system", "content": prompt.system}, {"role": "user", "content": content}]

    def answer(self, request: AnswerRequest, max_new_tokens: int = 256) -> str:
        body = {"model": self.name, "messages": self.messages(request), "max_tokens": max_new_tokens,
                "temperature": 0, "stream": False}
        reply = self._call("POST", "/chat/completions", body)
        try:
            content = reply["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise AnswererError(f"{self.url}: the reply has no choices[0].message.content") from None
        if isinstance(content, list):  # some servers answer in parts
            content = "".join(c.get("text", "") for c in content if isinstance(c, dict))
        return (content or "").strip()

    def _first_model(self) -> str:
        reply = self._call("GET", "/models")
        models = [m.get("id") for m in reply.get("data", []) if isinstance(m, dict) and m.get("id")]
        if not models:
            raise option_problem("answerer_model", f"is needed: {self.url}/models lists no model")
        return models[0]

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return json.loads(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:300].strip()
            raise AnswererError(f"{self.url}{path}: HTTP {exc.code} {exc.reason}: {' '.join(detail.split())}") from None
        except urllib.error.URLError as exc:
            raise AnswererError(f"{self.url}: cannot reach the server ({exc.reason})") from None
        except (TimeoutError, ConnectionError) as exc:
            raise AnswererError(f"{self.url}: {type(exc).__name__} ({exc})") from None
        except json.JSONDecodeError:
            raise AnswererError(f"{self.url}{path}: the reply is not JSON") from None


def jpeg_data_url(rgb: np.ndarray, quality: int = 85) -> str:
    """``data:image/jpeg;base64,...`` of an [H, W, 3] uint8 RGB image."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
