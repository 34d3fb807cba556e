"""The instrumented Flask target: application factory, endpoints and admin API."""

from __future__ import annotations

import atexit
import hmac
import math
import os
import secrets
import shutil

from flask import Blueprint, Flask, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from contract.errors import BadInput

from contract.addresses import is_loopback_host

from .catalogue import make_catalogue, search
from .costs import SeededRandom, burn_cpu, wait_io
from .faults import KINDS, MAX_ADDED_LATENCY_S, FaultEngine, FaultSpecError, FaultStore, parse_fault
from .incidents import IncidentLog
from .metrics import init_metrics
from .statedir import new_state_dir

DEFAULTS = {
    "SEED": 0,
    "STATE_DIR": None,            # shared fault state; a temp folder when not given
    "ADMIN_TOKEN": None,          # bearer token for /admin; generated when not given
    "ADMIN_ALLOW_REMOTE": False,  # admin API answers loopback clients only unless set
    "STRESS_WAIT_MIN_S": 0.5,     # the original guide's /stress: random wait 0.5-2.0 s
    "STRESS_WAIT_MAX_S": 2.0,
    "CATALOGUE_SIZE": 500,
    "METRICS": True,              # False only to measure the exporter's overhead
    "INCIDENT_LOG": None,         # also append incident lines here (the run's events.jsonl)
    "THREADS": 4,                 # request threads per process: what a threads fault exhausts
    "MAX_WORKER_RSS_MB": None,    # the master's kill limit: a memory fault leaks until it
}

# The only environment variables create_app reads (gunicorn workers are configured this
# way), each with its parser: anything else named LAB_* (LAB_DEBUG, LAB_SCENARIO, ...)
# never reaches the config, and a token like "1e3" stays a string.
ENV_KEYS = {
    "LAB_SEED": ("SEED", "int"),
    "LAB_STATE_DIR": ("STATE_DIR", "str"),
    "LAB_ADMIN_TOKEN": ("ADMIN_TOKEN", "str"),
    "LAB_ADMIN_ALLOW_REMOTE": ("ADMIN_ALLOW_REMOTE", "bool"),
    "LAB_STRESS_WAIT_MIN_S": ("STRESS_WAIT_MIN_S", "float"),
    "LAB_STRESS_WAIT_MAX_S": ("STRESS_WAIT_MAX_S", "float"),
    "LAB_CATALOGUE_SIZE": ("CATALOGUE_SIZE", "int"),
    "LAB_METRICS": ("METRICS", "bool"),
    "LAB_INCIDENT_LOG": ("INCIDENT_LOG", "str"),
    "LAB_THREADS": ("THREADS", "int"),            # set per worker from gunicorn's --threads
    "LAB_MAX_WORKER_RSS_MB": ("MAX_WORKER_RSS_MB", "float"),
}

_BOOLS = {"1": True, "true": True, "yes": True, "on": True,
          "0": False, "false": False, "no": False, "off": False, "": False}

LIMITS = {"wait_min": 30.0, "wait_max": 30.0, "cpu_ms": 5000.0, "io_ms": 30000.0}

api = Blueprint("api", __name__)
admin = Blueprint("admin", __name__, url_prefix="/admin")


def create_app(config: dict | None = None) -> Flask:
    """Build the target app: defaults, then the LAB_* variables of ENV_KEYS, then `config`."""
    app = Flask(__name__)
    app.config.from_mapping(DEFAULTS)
    app.config.from_mapping(config_from_env(os.environ))
    if config:
        app.config.from_mapping(config)
    app.config["DEBUG"] = bool(app.config.get("DEBUG", False))
    if not app.config["STATE_DIR"]:
        own = new_state_dir()
        atexit.register(shutil.rmtree, own, ignore_errors=True)
        app.config["STATE_DIR"] = str(own)
    if not app.config["ADMIN_TOKEN"]:
        app.config["ADMIN_TOKEN"] = new_token()

    incidents = IncidentLog(app.config["STATE_DIR"], app.config["INCIDENT_LOG"])
    engine = FaultEngine(FaultStore(app.config["STATE_DIR"]), threads=int(app.config["THREADS"]),
                         incidents=incidents, rss_limit_mb=app.config["MAX_WORKER_RSS_MB"])
    app.extensions["lab_faults"] = engine
    app.extensions["lab_incidents"] = incidents
    app.extensions["lab_rng"] = SeededRandom(int(app.config["SEED"]))
    app.extensions["lab_catalogue"] = make_catalogue(int(app.config["CATALOGUE_SIZE"]),
                                                     int(app.config["SEED"]))
    if app.config["METRICS"]:
        init_metrics(app, engine, incidents)
    app.register_blueprint(api)
    app.register_blueprint(admin)
    app.before_request(_inject_faults)
    app.register_error_handler(HTTPException, _http_error)
    return app


def config_from_env(environ) -> dict:
    """Read the known LAB_* variables, each parsed as its type; BadInput names a bad one."""
    out = {}
    for name, (key, kind) in ENV_KEYS.items():
        raw = environ.get(name)
        if raw is None:
            continue
        try:
            if kind == "int":
                out[key] = int(raw)
            elif kind == "float":
                out[key] = float(raw)
                if not math.isfinite(out[key]):
                    raise ValueError(raw)
            elif kind == "bool":
                out[key] = _BOOLS[raw.strip().lower()]
            else:
                out[key] = raw
        except (ValueError, KeyError):
            raise BadInput(f"environment: {name}: expected {kind}, got {raw!r}") from None
    return out


def new_token() -> str:
    """Return a fresh admin token (prefixed so env parsing never reads it as a number)."""
    return "lab_" + secrets.token_urlsafe(24)


def _http_error(exc: HTTPException):
    return jsonify(error=exc.description, status=exc.code), exc.code


def _engine() -> FaultEngine:
    return current_app.extensions["lab_faults"]


def _rng() -> SeededRandom:
    return current_app.extensions["lab_rng"]


def _inject_faults():
    """Apply request-path faults (threads, latency, errors) to tracked endpoints."""
    if request.path.startswith(("/metrics", "/healthz", "/admin")):
        return None
    _engine().hold_if_stuck()      # a stuck thread returns only when the fault is gone
    faults = _engine().current()
    latency = faults.get("latency")
    if latency is not None:
        wait_io(1000.0 * MAX_ADDED_LATENCY_S * latency.intensity * _rng().uniform(0.8, 1.2))
    errors = faults.get("errors")
    if errors is not None and _rng().random() < errors.intensity:
        return jsonify(error="injected fault: errors"), 503
    return None


def _number_arg(name: str, default: float) -> float:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise _bad_request(f"{name} must be a number, got {raw!r}")
    if not 0 <= value <= LIMITS[name]:
        raise _bad_request(f"{name} must be between 0 and {LIMITS[name]:g}, got {raw}")
    return value


def _bad_request(message: str) -> HTTPException:
    from werkzeug.exceptions import BadRequest

    return BadRequest(message)


# ------------------------------------------------------------------ endpoints


@api.get("/")
def index():
    """Cheap: say what this service is."""
    return jsonify(service="stability-lab target", endpoints=[
        "/stress", "/products", "/products/<id>", "/products/search?q=", "/checkout",
        "/healthz", "/metrics", "/admin/faults"])


@api.get("/healthz")
def healthz():
    return jsonify(status="ok", pid=os.getpid())


@api.get("/stress")
def stress():
    """The original guide's endpoint: a random wait (0.5-2.0 s), plus optional CPU and I/O work."""
    cfg = current_app.config
    wait_min = _number_arg("wait_min", cfg["STRESS_WAIT_MIN_S"])
    wait_max = _number_arg("wait_max", max(cfg["STRESS_WAIT_MAX_S"], wait_min))
    if wait_max < wait_min:
        raise _bad_request(f"wait_max ({wait_max:g}) must not be below wait_min ({wait_min:g})")
    cpu_ms = _number_arg("cpu_ms", 0.0)
    io_ms = _number_arg("io_ms", 0.0)
    waited = _rng().uniform(wait_min, wait_max)
    wait_io(waited * 1000.0)
    burn_cpu(cpu_ms)
    wait_io(io_ms)
    return jsonify(status="stressed", waited_s=round(waited, 4), cpu_ms=cpu_ms, io_ms=io_ms)


@api.get("/products")
def list_products():
    """Cheap read: one page of the catalogue."""
    products = current_app.extensions["lab_catalogue"]
    limit = _number_arg_int("limit", 20, 100)
    offset = _number_arg_int("offset", 0, len(products))
    wait_io(_rng().lognormal_ms(2.0))
    page = [products[i].to_dict() for i in sorted(products)[offset:offset + limit]]
    return jsonify(items=page, total=len(products), offset=offset, limit=limit)


@api.get("/products/<int:product_id>")
def get_product(product_id: int):
    """Cheap read: one product."""
    wait_io(_rng().lognormal_ms(3.0))
    product = current_app.extensions["lab_catalogue"].get(product_id)
    if product is None:
        return jsonify(error=f"no product {product_id}", status=404), 404
    return jsonify(product.to_dict())


@api.get("/products/search")
def search_products():
    """Expensive: a full scan plus a slow backend wait and some CPU for ranking."""
    query = request.args.get("q", "").strip()
    if not query:
        raise _bad_request("q is required")
    if len(query) > 100:
        raise _bad_request("q must be at most 100 characters")
    hits = search(current_app.extensions["lab_catalogue"], query)
    burn_cpu(_rng().lognormal_ms(6.0))
    wait_io(_rng().lognormal_ms(80.0))
    return jsonify(query=query, items=[p.to_dict() for p in hits], count=len(hits))


@api.post("/checkout")
def checkout():
    """CPU-heavy: price, validate and sign an order."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("items"), list) or not body["items"]:
        raise _bad_request('body must be JSON like {"items": [{"id": 1, "qty": 2}]}')
    products = current_app.extensions["lab_catalogue"]
    total = 0.0
    for n, item in enumerate(body["items"][:50]):
        if not isinstance(item, dict):
            raise _bad_request(f"items[{n}] must be an object with id and qty")
        pid, qty = item.get("id"), item.get("qty", 1)
        if not isinstance(pid, int) or pid not in products:
            raise _bad_request(f"items[{n}].id: no product {pid!r}")
        if not isinstance(qty, int) or not 1 <= qty <= 100:
            raise _bad_request(f"items[{n}].qty must be an integer 1..100")
        total += products[pid].price * qty
    burn_cpu(_rng().lognormal_ms(35.0))
    wait_io(_rng().lognormal_ms(10.0))
    return jsonify(status="ordered", items=len(body["items"]), total=round(total, 2)), 201


def _number_arg_int(name: str, default: int, maximum: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) > maximum:
        raise _bad_request(f"{name} must be an integer 0..{maximum}, got {raw!r}")
    return int(raw)


# ------------------------------------------------------------------ admin API


@admin.before_request
def _guard():
    """Answer only loopback clients holding the bearer token."""
    cfg = current_app.config
    if not cfg["ADMIN_ALLOW_REMOTE"]:
        if not is_loopback_host(request.remote_addr or ""):
            return jsonify(error="admin API answers loopback clients only"), 403
    header = request.headers.get("Authorization", "")
    expected = f"Bearer {cfg['ADMIN_TOKEN']}"
    if not hmac.compare_digest(header.encode(), expected.encode()):
        return jsonify(error="missing or wrong bearer token"), 401
    return None


def _fault_list() -> dict:
    faults = _engine().current()
    return {"faults": [
        {"kind": f.kind, "intensity": f.intensity, "started_at": f.started_at,
         "expires_at": f.expires_at} for f in faults.values()], "kinds": list(KINDS)}


@admin.get("/faults")
def list_faults():
    return jsonify(_fault_list())


@admin.post("/faults")
def add_fault():
    body = request.get_json(silent=True)
    try:
        fault = parse_fault(body)
    except FaultSpecError as exc:
        return jsonify(error=str(exc)), 400
    engine = _engine()
    engine.store.set(fault)
    engine.refresh()
    return jsonify(_fault_list()), 201


@admin.delete("/faults")
def clear_faults():
    engine = _engine()
    engine.store.clear()
    engine.refresh()
    return jsonify(_fault_list())


@admin.delete("/faults/<kind>")
def clear_fault(kind: str):
    if kind not in KINDS:
        return jsonify(error=f"kind must be one of {', '.join(KINDS)}, got {kind!r}"), 400
    engine = _engine()
    engine.store.clear(kind)
    engine.refresh()
    return jsonify(_fault_list())
