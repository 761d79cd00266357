"""Kie's doc pages, read and parsed: ``llms.txt`` (the index of the docs) and each model page's OpenAPI
fragment, turned into a catalog entry in the bundled format.

Pages are read only when the catalog refuses an input (the recheck: Kie's current page decides, see
:func:`~airflow_provider_kie.models.check_input`) and by ``python -m airflow_provider_kie.catalog
refresh`` (:func:`refresh`), never at import or on the happy path. The docs host (``docs_url`` of the
connection, else ``KIE_DOCS_URL``, else https://docs.kie.ai) gets a plain GET of the page's URL: no key,
no user input. A page read is kept for a day, in the process and on disk under ``KIE_CACHE_DIR`` (a
temporary folder by default); a page that cannot be read is tried again after five minutes. Values the
catalog refuses but Kie accepted (a task was created from them) are kept there too, and count as
allowed from then on.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from airflow_provider_kie import models
from airflow_provider_kie.api import CREATE_TASK_PATH

log = logging.getLogger(__name__)

DEFAULT_DOCS_URL = "https://docs.kie.ai"
DOCS_URL_ENV = "KIE_DOCS_URL"
CACHE_DIR_ENV = "KIE_CACHE_DIR"
#: How long a page read serves (Kie changes its pages within weeks, not hours).
PAGE_TTL_SECONDS = 86400.0
#: How long a page that could not be read is not asked for again (a batch asks once, not per item).
UNREADABLE_TTL_SECONDS = 300.0
FETCH_TIMEOUT_SECONDS = 10.0


class PageUnreadable(Exception):
    """A page that could not be read: no route to it, an error answer, or a page changed beyond parsing."""


def docs_base(docs_url: str | None = None) -> str:
    """The docs host to read pages from: ``docs_url``, else ``KIE_DOCS_URL``, else Kie's."""
    return (docs_url or os.environ.get(DOCS_URL_ENV) or DEFAULT_DOCS_URL).rstrip("/")


def cache_dir() -> Path:
    """The folder every process of the machine shares for pages read and values Kie accepted."""
    configured = os.environ.get(CACHE_DIR_ENV)
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "airflow-provider-kie"


def page_url(docs: str, doc_url: str) -> str:
    """The page ``doc_url`` names (its path), on the docs host ``docs``."""
    return docs.rstrip("/") + urlparse(doc_url).path


def today() -> str:
    return datetime.now(timezone.utc).date().isoformat()


def fetch(url: str) -> str:
    """The text at ``url``: a plain GET, with no key and nothing of the user's."""
    import requests

    from airflow_provider_kie.hooks.settings import USER_AGENT

    try:
        response = requests.get(url, timeout=FETCH_TIMEOUT_SECONDS, headers={"User-Agent": USER_AGENT})
    except requests.RequestException as error:
        raise PageUnreadable(f"{url}: {type(error).__name__}") from None
    if response.status_code != 200:
        raise PageUnreadable(f"{url} answered HTTP {response.status_code}")
    return response.text


# --------------------------------------------------------------------------- parsing

_FRAGMENT = re.compile(r"```ya?ml\s*\n(.*?)\n```", re.DOTALL)
_LINK = re.compile(r"\]\((\S+?\.md)\)")
_ACCEPTED = re.compile(r"Accepted types:\s*([^;)]+)")
_MAX_SIZE = re.compile(r"Max size:\s*([\d.]+)\s*MB", re.IGNORECASE)
_PATTERN_SCHEMES = re.compile(r"\^\(?([a-z?|]+)\)?:")
_ITEM_TYPES = {
    "string": "string",
    "object": "object",
    "array": "array",
    "integer": "number",
    "number": "number",
}
_FACTS = {
    "enum": "enum", "default": "default", "minimum": "min", "maximum": "max", "minLength": "min_length",
    "maxLength": "max_length", "minItems": "min_items", "maxItems": "max_items",
}  # fmt: skip


def parse_llms(text: str, docs: str) -> list[str]:
    """The pages ``llms.txt`` links to on the docs host ``docs``, in order, once each."""
    host = urlparse(docs).netloc
    found = [url for url in _LINK.findall(text) if urlparse(url).netloc == host]
    return list(dict.fromkeys(found))


def parse_page(text: str, url: str, read_at: str) -> dict[str, Any] | None:
    """The catalog entry a model page documents (its createTask fragment), or None for a page that
    documents no Market model (a guide, the index of a family). Raises :class:`PageUnreadable` for a
    page whose fragment cannot be read."""
    match = _FRAGMENT.search(text)
    import yaml

    try:
        document = yaml.safe_load(match.group(1) if match else text)
    except yaml.YAMLError as error:
        raise PageUnreadable(f"{url}: its OpenAPI fragment is not YAML ({type(error).__name__})") from None
    if not isinstance(document, Mapping):
        if match is None:
            return None
        raise PageUnreadable(f"{url}: its OpenAPI fragment is not a document")
    operation = ((document.get("paths") or {}).get(CREATE_TASK_PATH) or {}).get("post")
    if not isinstance(operation, Mapping):
        return None
    try:
        content = operation["requestBody"]["content"]["application/json"]
        body = _merged(_inline(content["schema"], document))
    except (KeyError, TypeError) as error:
        raise PageUnreadable(f"{url}: its createTask fragment has no request schema ({error})") from None
    model = _model_id(body.properties.get("model") or {}, content.get("example"))
    if model is None:
        return None
    given = _merged(_inline(body.properties.get("input") or {}, document))
    tags = [str(t) for t in operation.get("tags") or ()] + [str(operation.get("x-apidog-folder") or "")]
    return {
        "model": model,
        "family": _family(tags),
        "kind": _kind(tags),
        "task": "",
        "fields": [
            _field(name.strip(), prop, name in given.required) for name, prop in given.properties.items()
        ],
        "result": "resultUrls",
        "sources": ["page"],
        "confidence": "doc",
        "doc_url": url,
        "read_at": read_at,
    }


@dataclass
class _Schema:
    properties: dict[str, Any] = field(default_factory=dict)
    required: set[str] = field(default_factory=set)


def _inline(node: Any, root: Mapping[str, Any], depth: int = 0) -> Any:
    """``node`` with local ``$ref``s replaced by what they point at."""
    if depth > 20:
        return node
    if isinstance(node, Mapping):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            target: Any = root
            for part in ref[2:].split("/"):
                target = target.get(part, {}) if isinstance(target, Mapping) else {}
            return _inline(target, root, depth + 1)
        return {k: _inline(v, root, depth + 1) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, root, depth + 1) for v in node]
    return node


def _merged(schema: Any) -> _Schema:
    """An object schema's properties and required keys, ``allOf`` parts added and ``oneOf`` / ``anyOf``
    alternatives joined: a key any alternative takes is taken, the loosest limits win, and a key is
    required only where every alternative requires it."""
    if not isinstance(schema, Mapping):
        return _Schema()
    merged = _Schema(dict(schema.get("properties") or {}), set(schema.get("required") or ()))
    for part in schema.get("allOf") or ():
        inner = _merged(part)
        merged.properties.update(inner.properties)
        merged.required |= inner.required
    alternatives = [_merged(a) for a in schema.get("oneOf") or schema.get("anyOf") or ()]
    for alternative in alternatives:
        for name, prop in alternative.properties.items():
            merged.properties[name] = _loosest(merged.properties.get(name), prop)
    if alternatives:
        merged.required |= set.intersection(*(a.required for a in alternatives))
    return merged


def _loosest(a: Any, b: Any) -> Any:
    if not isinstance(a, Mapping) or not isinstance(b, Mapping):
        return b if a is None else a
    joined = {**a, **b}
    for key, pick in (("maximum", max), ("maxLength", max), ("maxItems", max)):
        if key in a and key in b:
            joined[key] = pick(a[key], b[key])
    for key, pick in (("minimum", min), ("minLength", min), ("minItems", min)):
        if key in a and key in b:
            joined[key] = pick(a[key], b[key])
        else:
            joined.pop(key, None)
    if "enum" in a and "enum" in b:
        joined["enum"] = list(dict.fromkeys([*a["enum"], *b["enum"]]))
    return joined


def _model_id(prop: Mapping[str, Any], example: Any) -> str | None:
    # Two of Kie's pages carried another model's id in their enum; the request example has the real one.
    if isinstance(example, Mapping) and isinstance(example.get("model"), str) and example["model"].strip():
        return example["model"].strip()
    for candidate in (*(prop.get("enum") or ()), prop.get("default")):
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip()
    return None


def _field(name: str, prop: Any, required: bool) -> dict[str, Any]:
    prop = prop if isinstance(prop, Mapping) else {}
    declared = prop.get("type")
    if isinstance(declared, list):
        declared = next((t for t in declared if t != "null"), None)
    items = prop.get("items") if isinstance(prop.get("items"), Mapping) else {}
    if declared == "array":
        kind = f"array[{_ITEM_TYPES.get(str(items.get('type')), 'string')}]"
    elif declared in ("string", "integer", "number", "boolean"):
        kind = str(declared)
    else:
        kind = "unspecified"
    result: dict[str, Any] = {"name": name, "type": kind}
    if required:
        result["required"] = True
    result.update({fact: prop[key] for key, fact in _FACTS.items() if prop.get(key) is not None})
    if declared == "array" and isinstance(items.get("properties"), Mapping) and items["properties"]:
        result["item_fields"] = list(items["properties"])
    result.update(_file_facts(name, prop, items))
    return result


def _file_facts(name: str, prop: Mapping[str, Any], items: Mapping[str, Any]) -> dict[str, Any]:
    """What a page says of a field that takes hosted files: their kind, types, size and the reference
    forms besides http(s) (``oss://``, ``asset://``)."""
    description = " ".join(str(prop.get("description") or "").split())
    accepted = _ACCEPTED.search(description)
    if not accepted and "File URL after upload" not in description:
        return {}
    types = [t.strip() for t in accepted.group(1).split(",") if "/" in t] if accepted else []
    accept = [t for t in types if not t.endswith("/*")]  # "video/*": any video, no list to check
    majors = {t.split("/")[0] for t in types}
    kind = next((m for m in ("image", "video", "audio") if m in majors), None)
    if kind is None:
        kind = "document" if types else next((m for m in ("video", "audio") if m in name), "image")
    facts: dict[str, Any] = {"file": kind}
    if accept:
        facts["accept"] = accept
    size = _MAX_SIZE.search(description)
    if size:
        facts["max_mb"] = float(size.group(1))
    schemes = []
    for pattern in (prop.get("pattern"), items.get("pattern")):
        found = _PATTERN_SCHEMES.match(str(pattern or ""))
        if found:
            schemes += [s for s in found.group(1).split("|") if not s.startswith("http")]
    if "asset://" in description:
        schemes.append("asset")
    if re.search(r"\bOSS\b", description):
        schemes.append("oss")
    if schemes:
        facts["schemes"] = sorted(set(schemes))
    return facts


def _kind(tags: list[str]) -> str:
    text = " ".join(tags).lower()
    for word, kind in (("video", "video"), ("audio", "audio"), ("music", "audio"), ("speech", "audio")):
        if word in text:
            return kind
    return "image"


def _family(tags: list[str]) -> str:
    return next((t.rsplit("/", 1)[-1].strip() for t in tags if "/" in t), "")


def merged(page: Mapping[str, Any], base: Mapping[str, Any] | None) -> dict[str, Any]:
    """The entry a page gives, with what a page does not state (kind, task, family, result shape,
    notes, a field's note) kept from the entry it replaces."""
    entry = dict(page)
    if base:
        for key in ("family", "kind", "task", "result", "notes"):
            if base.get(key):
                entry[key] = base[key]
        notes = {f["name"]: f["note"] for f in base.get("fields") or () if f.get("note")}
        entry["fields"] = [
            {**f, "note": notes[f["name"]]} if f["name"] in notes else f for f in page["fields"]
        ]
    return entry


# --------------------------------------------------------------------------- the recheck's pages

_pages: dict[tuple[str, str], tuple[float, models.KieModel | PageUnreadable]] = {}


def current_entry(known: models.KieModel, docs_url: str | None = None) -> models.KieModel:
    """``known``'s model as its current page documents it (read at most once a day per process and
    machine); raises :class:`PageUnreadable`."""
    docs = docs_base(docs_url)
    key = (docs, known.name)
    hit = _pages.get(key)
    if hit is not None and hit[0] > time.time():
        if isinstance(hit[1], PageUnreadable):
            raise hit[1]
        return hit[1]
    try:
        page = _cached_page(docs, known)
        found = models.KieModel.from_dict(merged(page, _as_dict(known)))
    except PageUnreadable as why:
        _pages[key] = (time.time() + UNREADABLE_TTL_SECONDS, why)
        raise
    _pages[key] = (time.time() + PAGE_TTL_SECONDS, found)
    return found


def _as_dict(known: models.KieModel) -> dict[str, Any]:
    return {"family": known.family, "kind": known.kind, "task": known.task, "result": known.result}


def _cached_page(docs: str, known: models.KieModel) -> dict[str, Any]:
    if not known.doc_url:
        raise PageUnreadable(f"the catalog names no page for {known.name}")
    url = page_url(docs, known.doc_url)
    path = cache_dir() / "pages" / _digest(docs) / f"{known.name.replace('/', '__')}.json"
    with contextlib.suppress(OSError, ValueError, KeyError):
        cached = json.loads(path.read_text(encoding="utf-8"))
        if time.time() - float(cached["read"]) < PAGE_TTL_SECONDS and cached["url"] == url:
            return dict(cached["entry"])
    page = parse_page(fetch(url), url, today())
    if page is None:
        raise PageUnreadable(f"{url} documents no createTask model any more")
    if page["model"] != known.name:
        raise PageUnreadable(f"{url} now documents {page['model']}, not {known.name}")
    _write(path, {"url": url, "read": time.time(), "entry": page})
    return page


# --------------------------------------------------------------------------- values Kie accepted

_accepted: dict[Path, tuple[int, frozenset[str]]] = {}


def _accepted_path(model: str) -> Path:
    return cache_dir() / "accepted" / f"{model.replace('/', '__')}.json"


def accepted_before(model: str, key: str) -> bool:
    """Whether Kie created a task from ``key`` (a field and value the catalog refuses) before."""
    return key in _accepted_keys(_accepted_path(model))


def _accepted_keys(path: Path) -> frozenset[str]:
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return frozenset()
    hit = _accepted.get(path)
    if hit is None or hit[0] != stamp:
        with contextlib.suppress(OSError, ValueError):
            hit = (stamp, frozenset(json.loads(path.read_text(encoding="utf-8"))))
            _accepted[path] = hit
    return hit[1] if hit else frozenset()


def remember_accepted(model: str, keys: list[str]) -> None:
    """Kie created a task from these values: they count as allowed for ``model`` from now on."""
    path = _accepted_path(model)
    if set(keys) <= _accepted_keys(path):
        return
    try:
        with _locked(path):
            known = set(_accepted_keys(path)) | set(keys)
            _write(path, sorted(known))
    except OSError as error:  # a read-only disk only costs a page read or a warning later
        log.warning("Cannot keep the values Kie accepted for %s in %s: %s", model, path, error)
        return
    _accepted.pop(path, None)
    log.info("Kie accepted input the provider's catalog refuses for %s: %s", model, ", ".join(keys))


def forget() -> None:
    """Forget the pages and accepted values this process read (their files stay)."""
    _pages.clear()
    _accepted.clear()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _write(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(value, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    partial.replace(path)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- the refresh


@dataclass
class RefreshReport:
    """What a refresh found against the catalog it replaces."""

    docs: str
    read_at: str
    added: list[str] = field(default_factory=list)
    changed: dict[str, list[str]] = field(default_factory=dict)  # model -> the fields that changed
    unchanged: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # pages that could not be read: entries kept

    def lines(self) -> list[str]:
        lines = [
            f"Read {len(self.added) + len(self.changed) + len(self.unchanged)} model pages from "
            f"{self.docs} on {self.read_at}: {len(self.added)} added, {len(self.changed)} changed, "
            f"{len(self.unchanged)} unchanged, {len(self.gone)} gone, {len(self.unreadable)} unreadable"
        ]
        lines += [f"  added   {name}" for name in self.added]
        lines += [f"  changed {name}: {', '.join(what)}" for name, what in self.changed.items()]
        lines += [f"  gone    {name}" for name in self.gone]
        lines += [f"  unreadable {url}" for url in self.unreadable]
        return lines


def refresh(docs_url: str | None, out: Path, *, workers: int = 8) -> RefreshReport:
    """Read ``{docs}/llms.txt`` and every model page it links to; write one entry per model found into
    ``out`` (the bundled format, with the page's URL and the date read), mark the models of the
    catalog it replaces (``out``'s entries over the bundled ones) that no page documents any more as
    gone, and say what changed."""
    docs = docs_base(docs_url)
    read_at = today()
    base = {name: _base_entry(name, out) for name in _base_names(out)}
    known_pages = {urlparse(e["doc_url"]).path for e in base.values() if e.get("doc_url")}
    urls = [
        url
        for url in parse_llms(fetch(f"{docs}/llms.txt"), docs)
        if urlparse(url).path.startswith("/market/") or urlparse(url).path in known_pages
    ]
    report = RefreshReport(docs, read_at)

    def read(url: str) -> dict[str, Any] | str | None:
        try:
            return parse_page(fetch(url), url, read_at)
        except PageUnreadable:
            return url

    with ThreadPoolExecutor(max(1, workers)) as pool:
        pages = list(pool.map(read, urls))
    found: dict[str, dict[str, Any]] = {}
    for page in pages:
        if isinstance(page, str):
            report.unreadable.append(page)
        elif page is not None:
            found[page["model"]] = page
    out.mkdir(parents=True, exist_ok=True)
    for name, page in sorted(found.items()):
        entry = merged(page, base.get(name))
        if name not in base:
            report.added.append(name)
        elif (what := _changes(base[name], entry)) or base[name].get("status") == "gone":
            report.changed[name] = what or ["back on Kie's pages"]
        else:
            report.unchanged.append(name)
        _write(out / f"{name.replace('/', '__')}.json", entry)
    unread = {urlparse(url).path for url in report.unreadable}
    for name, entry in sorted(base.items()):
        if name in found or urlparse(entry.get("doc_url") or "").path in unread:
            continue
        report.gone.append(name)
        last_seen = entry.get("last_seen") or entry.get("read_at") or models.catalog_date()
        _write(out / f"{name.replace('/', '__')}.json", {**entry, "status": "gone", "last_seen": last_seen})
    _write(out / "_refresh.json", {"docs": docs, "read_at": read_at, **_summary(report)})
    models.forget_entries()
    return report


def _base_names(out: Path) -> set[str]:
    return {
        p.stem.replace("__", "/")
        for d in (out, models.CATALOG_DIR)
        for p in d.glob("*.json")
        if not p.name.startswith("_")
    }


def _base_entry(name: str, out: Path) -> dict[str, Any]:
    for folder in (out, models.CATALOG_DIR):
        path = folder / f"{name.replace('/', '__')}.json"
        if path.is_file():
            return dict(json.loads(path.read_text(encoding="utf-8")))
    return {}


def _changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The fields whose facts differ (added, removed or changed)."""

    def facts(field: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in field.items() if k != "note" and not (k == "required" and v is False)}

    before = {f["name"]: facts(f) for f in old.get("fields") or ()}
    after = {f["name"]: facts(f) for f in new.get("fields") or ()}
    return [name for name in dict.fromkeys([*before, *after]) if before.get(name) != after.get(name)]


def _summary(report: RefreshReport) -> dict[str, Any]:
    return {
        "added": report.added,
        "changed": report.changed,
        "gone": report.gone,
        "unreadable": report.unreadable,
    }
