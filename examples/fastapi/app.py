"""A small FastAPI service for servesim to calibrate and validate from outside.

A NumPy decoder-only transformer (char-level, 64-symbol vocabulary, d_model 64, 2 layers,
4 heads with QK-norm and rotary positions, context 64, float32, deterministic weights from
np.random.default_rng(0)) continues the prompt greedily, behind three routes named after
servesim's handlers:

    POST /sync            `def` handler: FastAPI runs it on anyio's threadpool
    POST /async-blocking  `async def` calling the model inline: blocks the event loop
    POST /async-offload   `async def` awaiting anyio.to_thread.run_sync(generate, ...)
    GET  /health          {"ok": true} once the model is loaded

Every response carries `x-worker-pid: <the answering process's pid>`.

Request: {"prompt": str of at most 48 characters (default ""), "max_new_tokens": int in
0..=32 (default 8)}, both optional, nothing else; a bad body gets FastAPI's 422.
Reply: {"text": the new characters, "tokens": how many}.

The model is written the way small Python models usually are: a loop per token (no KV
cache: each step runs the whole context), per layer and per head, layer norm / RMS norm /
GELU / softmax / rotary embedding as a few NumPy calls each, and the repetition penalty and
the greedy pick in plain Python. That is about 440 NumPy operations per step (some 360 that
compute, 47 of them matmuls, the rest slices and views) on arrays of tens to a few thousand
elements, so most of the time goes to the interpreter and NumPy's per-call overhead, with
the GIL held. NumPy drops the GIL inside a call only when its loop covers more than 500
elements: for the default request (11 to 18 tokens of context) in about 65 calls per step,
none of them in the per-head work; the 8 of those that take time (3 matmuls and GELU's tanh
per layer) are timed with the thread's CPU clock. Each model reply carries a W3C
`Server-Timing` header:

    queue;dur=Q  wall ms from the request entering the app until the model started
    lock;dur=Z   wall ms in the model minus the thread's CPU ms (waiting: for the GIL, or
                 for a core)
    held;dur=X   the thread's CPU ms outside the GIL-free calls (bytecode: GIL held)
    free;dur=Y   the thread's CPU ms inside the matmuls and tanh that NumPy runs without
                 the GIL (their dispatch overhead included; the sub-microsecond GIL drops
                 inside the other calls over 500 elements are counted as held)

Environment: THREADS, the threadpool size (anyio's limiter, default 40). OpenBLAS, OpenMP
and MKL are held to one thread. Run from this folder (the import string `app:app` is what
--workers needs):

    .venv/bin/python -m uvicorn app:app --host 127.0.0.1 --port 8000 --workers 2 --log-level warning

`python app.py` prints one default request's timing and the per-step call counts.
"""

import os

# BLAS must never start threads of its own: set before NumPy is imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import time  # noqa: E402
from contextlib import asynccontextmanager  # noqa: E402
from typing import Optional  # noqa: E402

import anyio  # noqa: E402
import anyio.to_thread  # noqa: E402
import numpy as np  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402
from pydantic import BaseModel, ConfigDict, Field  # noqa: E402

# ---------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------

VOCAB = " abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789."  # 64 symbols
assert len(VOCAB) == 64
UNKNOWN = VOCAB.index(".")  # any other character reads as "."
N_VOCAB = len(VOCAB)
D_MODEL = 64
N_LAYER = 2
N_HEAD = 4
HEAD = D_MODEL // N_HEAD
CONTEXT = 64
D_FF = 4 * D_MODEL
MAX_PROMPT = 48
MAX_NEW_TOKENS = 32
DEFAULT_NEW_TOKENS = 8
REPETITION_PENALTY = 1.6  # Hugging Face's RepetitionPenaltyLogitsProcessor rule
REPETITION_WINDOW = 16

# NumPy releases the GIL around a ufunc's (or matmul's) inner loop only when the loop
# covers more than this many elements (NPY_BEGIN_THREADS_THRESHOLDED).
NUMPY_GIL_THRESHOLD = 500

_CODE = {c: i for i, c in enumerate(VOCAB)}
F32 = np.float32


class Meter:
    """One request's CPU accounting of the NumPy calls that run without the GIL."""

    __slots__ = ("free", "free_calls", "held_calls")

    def __init__(self):
        self.free = 0.0  # thread CPU seconds inside GIL-free NumPy calls
        self.free_calls = 0  # calls NumPy ran without the GIL
        self.held_calls = 0  # matmuls too small for NumPy to drop the GIL

    def mm(self, a, b):
        """a @ b, timed as GIL-free when NumPy drops the GIL for it."""
        if a.shape[0] * b.shape[1] > NUMPY_GIL_THRESHOLD:
            t0 = time.thread_time()
            out = a @ b
            self.free += time.thread_time() - t0
            self.free_calls += 1
            return out
        self.held_calls += 1
        return a @ b

    def tanh(self, x):
        """np.tanh(x), timed as GIL-free when NumPy drops the GIL for it."""
        if x.size > NUMPY_GIL_THRESHOLD:
            t0 = time.thread_time()
            out = np.tanh(x)
            self.free += time.thread_time() - t0
            self.free_calls += 1
            return out
        return np.tanh(x)


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


class Linear:
    def __init__(self, rng, n_in, n_out, bias=True):
        self.w = (rng.standard_normal((n_in, n_out)) * n_in**-0.5).astype(F32)
        self.b = np.zeros(n_out, F32) if bias else None

    def __call__(self, x, m):
        y = m.mm(x, self.w)
        return y if self.b is None else y + self.b


class LayerNorm:
    def __init__(self, n):
        self.g = np.ones(n, F32)
        self.b = np.zeros(n, F32)

    def __call__(self, x, m):
        mu = x.mean(-1, keepdims=True)
        xc = x - mu
        var = (xc * xc).mean(-1, keepdims=True)
        return xc / np.sqrt(var + 1e-5) * self.g + self.b


class RMSNorm:
    def __init__(self, n):
        self.g = np.ones(n, F32)

    def __call__(self, x, m):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-6) * self.g


def _rotary_tables():
    inv_freq = 10000.0 ** (-np.arange(0, HEAD, 2) / HEAD)
    angles = np.outer(np.arange(CONTEXT), inv_freq)
    angles = np.concatenate([angles, angles], axis=-1)
    return np.cos(angles).astype(F32), np.sin(angles).astype(F32)


ROPE_COS, ROPE_SIN = _rotary_tables()


def rotary(x, t):
    """Rotary position embedding (GPT-NeoX's rotate-half form) of a head's queries or keys."""
    half = HEAD // 2
    rotated = np.concatenate([-x[:, half:], x[:, :half]], axis=-1)
    return x * ROPE_COS[:t] + rotated * ROPE_SIN[:t]


class Head:
    """One head of causal self-attention: its own key, query and value projections, RMS
    norm of the queries and keys (QK-norm, as in OLMo 2 or Qwen3), rotary positions."""

    def __init__(self, rng):
        self.key = Linear(rng, D_MODEL, HEAD, bias=False)
        self.query = Linear(rng, D_MODEL, HEAD, bias=False)
        self.value = Linear(rng, D_MODEL, HEAD, bias=False)
        self.q_norm = RMSNorm(HEAD)
        self.k_norm = RMSNorm(HEAD)

    def __call__(self, x, m):
        t = x.shape[0]
        k = rotary(self.k_norm(self.key(x, m), m), t)
        q = rotary(self.q_norm(self.query(x, m), m), t)
        wei = m.mm(q, k.T) * HEAD**-0.5
        wei = np.where(TRIL[:t, :t], wei, -np.inf)
        wei = softmax(wei)
        v = self.value(x, m)
        return m.mm(wei, v)


class MultiHeadAttention:
    def __init__(self, rng):
        self.heads = [Head(rng) for _ in range(N_HEAD)]
        self.proj = Linear(rng, D_MODEL, D_MODEL)

    def __call__(self, x, m):
        out = np.concatenate([h(x, m) for h in self.heads], axis=-1)
        return self.proj(out, m)


class FeedForward:
    def __init__(self, rng):
        self.fc = Linear(rng, D_MODEL, D_FF)
        self.fc2 = Linear(rng, D_FF, D_MODEL)

    def __call__(self, x, m):
        h = self.fc(x, m)
        h = 0.5 * h * (1.0 + m.tanh(0.7978845608 * (h + 0.044715 * h * h * h)))  # GELU
        return self.fc2(h, m)


class Block:
    def __init__(self, rng):
        self.ln1 = LayerNorm(D_MODEL)
        self.sa = MultiHeadAttention(rng)
        self.ln2 = LayerNorm(D_MODEL)
        self.ffwd = FeedForward(rng)

    def __call__(self, x, m):
        x = x + self.sa(self.ln1(x, m), m)
        return x + self.ffwd(self.ln2(x, m), m)


class MiniGPT:
    """Decoder-only, char-level; deterministic float32 weights from default_rng(0)."""

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.wte = rng.standard_normal((N_VOCAB, D_MODEL)).astype(F32)
        self.blocks = [Block(rng) for _ in range(N_LAYER)]
        self.ln_f = LayerNorm(D_MODEL)
        self.lm_head = Linear(rng, D_MODEL, N_VOCAB)

    def __call__(self, ids, m):
        """Logits (N_VOCAB,) of the token after `ids` (at most CONTEXT of them)."""
        x = self.wte[ids]
        for block in self.blocks:
            x = block(x, m)
        return self.lm_head(self.ln_f(x[-1:], m), m)[0]


TRIL = np.tril(np.ones((CONTEXT, CONTEXT), dtype=bool))
MODEL = MiniGPT()


def pick(logits, history):
    """The greedy choice after a repetition penalty on the recent tokens, in plain Python
    (Hugging Face's RepetitionPenaltyLogitsProcessor, then argmax)."""
    scores = logits.tolist()
    for tok in set(history[-REPETITION_WINDOW:]):
        s = scores[tok]
        scores[tok] = s / REPETITION_PENALTY if s > 0 else s * REPETITION_PENALTY
    best, best_score = 0, scores[0]
    for tok, s in enumerate(scores):
        if s > best_score:
            best, best_score = tok, s
    return best


def encode(text):
    return [_CODE.get(c, UNKNOWN) for c in text]


def decode(ids):
    return "".join(VOCAB[i] for i in ids)


def generate(prompt, max_new_tokens, arrived):
    """Runs the model; returns (reply dict, Server-Timing value).

    `arrived` is the perf_counter() at which the request entered the app."""
    wall0 = time.perf_counter()
    cpu0 = time.thread_time()
    m = Meter()
    ids = encode(prompt) or [0]  # an empty prompt starts from a space
    out = []
    for _ in range(max_new_tokens):
        tok = pick(MODEL(ids[-CONTEXT:], m), ids)
        ids.append(tok)
        out.append(tok)
    text = decode(out)
    cpu = time.thread_time() - cpu0
    wall = time.perf_counter() - wall0
    timing = "queue;dur=%.3f, lock;dur=%.3f, held;dur=%.3f, free;dur=%.3f" % (
        max(0.0, wall0 - arrived) * 1e3,
        max(0.0, wall - cpu) * 1e3,
        max(0.0, cpu - m.free) * 1e3,
        m.free * 1e3,
    )
    return {"text": text, "tokens": len(out)}, timing


# Load (build) the weights and run once at import, so the first request is not special.
generate("hello", 2, time.perf_counter())
MODEL_READY = True

# ---------------------------------------------------------------------------------------
# The service
# ---------------------------------------------------------------------------------------

THREADS = int(os.environ.get("THREADS", "40"))
ARRIVED = "servesim.arrived"  # scope key: perf_counter() when the request entered the app


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: str = Field(default="", max_length=MAX_PROMPT)
    max_new_tokens: int = Field(default=DEFAULT_NEW_TOKENS, ge=0, le=MAX_NEW_TOKENS)


@asynccontextmanager
async def lifespan(_app):
    # Inside the running event loop: the limiter is per loop.
    anyio.to_thread.current_default_thread_limiter().total_tokens = THREADS
    yield


class StampArrival:
    """Outermost app layer: notes when each HTTP request entered the app, and names the
    worker process that answers it (`x-worker-pid`, on every response): with uvicorn's
    --workers N the workers share one listening socket, and which of them accepts a
    connection is a race; servesim reads the header to learn how its users were split."""

    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        scope[ARRIVED] = time.perf_counter()

        async def send_with_pid(message):
            if message["type"] == "http.response.start":
                # os.getpid() at the response: the worker process, whatever forked it.
                pid = (b"x-worker-pid", str(os.getpid()).encode())
                message = {**message, "headers": [*message.get("headers", []), pid]}
            await send(message)

        await self.inner(scope, receive, send_with_pid)


app = FastAPI(title="servesim FastAPI example", lifespan=lifespan)
app.add_middleware(StampArrival)


def _args(request: Request, body: Optional[GenerateRequest]):
    body = body or GenerateRequest()
    return body.prompt, body.max_new_tokens, request.scope.get(ARRIVED, time.perf_counter())


def _reply(result):
    reply, timing = result
    return JSONResponse(reply, headers={"Server-Timing": timing})


@app.post("/sync")
def sync_route(request: Request, body: Optional[GenerateRequest] = None):
    return _reply(generate(*_args(request, body)))


@app.post("/async-blocking")
async def async_blocking_route(request: Request, body: Optional[GenerateRequest] = None):
    return _reply(generate(*_args(request, body)))


@app.post("/async-offload")
async def async_offload_route(request: Request, body: Optional[GenerateRequest] = None):
    return _reply(await anyio.to_thread.run_sync(generate, *_args(request, body)))


@app.get("/health")
async def health():
    if not MODEL_READY:
        return JSONResponse({"ok": False}, status_code=503)
    return {"ok": True}


def _profile():
    """One default request: its Server-Timing, and the calls per forward step."""
    prompt = "hello world"
    for _ in range(20):
        generate(prompt, DEFAULT_NEW_TOKENS, time.perf_counter())
    _, timing = generate(prompt, DEFAULT_NEW_TOKENS, time.perf_counter())
    print("one request (%r, %d new tokens): %s" % (prompt, DEFAULT_NEW_TOKENS, timing))
    ids = encode(prompt)
    for t in (len(ids), len(ids) + DEFAULT_NEW_TOKENS - 1):
        m = Meter()
        MODEL((ids * 4)[:t], m)
        tanh = N_LAYER if t * D_FF > NUMPY_GIL_THRESHOLD else 0
        print(
            "one step over %d tokens: %d matmuls (%d without the GIL), %d tanh without the GIL"
            % (t, m.free_calls + m.held_calls - tanh, m.free_calls - tanh, tanh)
        )


if __name__ == "__main__":
    _profile()
