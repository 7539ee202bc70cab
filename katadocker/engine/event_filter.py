"""``docker events --filter``: which events a subscriber sees (moby's daemon/events/filter.go).

Values of one key are OR'ed, keys are AND'ed. ``type`` and ``event`` match exactly (``event``
fuzzily for ``exec_*``/``health_status``, whose actions carry a ``: detail`` suffix); ``container``,
``network``, ``volume`` (and the swarm/plugin/daemon keys, kept for scripts) match the actor's ID or
``name`` attribute by prefix, whatever the event's type; ``image`` matches the image ID or name (the
``image`` attribute of container events), with or without its tag; ``label`` (``k`` or ``k=v``) must
all hold for the actor's attributes; ``scope`` matches exactly.
"""

from __future__ import annotations

from katadocker.engine.events import Message
from katadocker.engine.images import parse_filters as _parse

KEYS = frozenset({"config", "container", "daemon", "event", "image", "label", "network", "node", "plugin",
                  "scope", "secret", "service", "type", "volume"})
_FUZZY_ACTIONS = ("health_status", "exec_create", "exec_start")
_NAMED = ("container", "network", "volume", "daemon", "plugin", "node", "service", "secret", "config")

Filters = dict[str, list[str]]


def parse(values: list[str]) -> Filters:
    """``["type=container", "event=start"]`` -> ``{"type": ["container"], "event": ["start"]}``;
    docker's errors for a value without ``=`` (UsageError) and an unknown key (InvalidArgument)."""
    return _parse(values, KEYS)


def _exact(filters: Filters, key: str, *sources: str) -> bool:
    values = filters.get(key)
    return not values or any(s in values for s in sources)


def _fuzzy(filters: Filters, key: str, *sources: str) -> bool:
    values = filters.get(key)
    return not values or any(s == v or s.startswith(v) for v in values for s in sources)


def _strip_tag(name: str) -> str:
    """The repository of ``name:tag`` (a registry port's colon is not a tag)."""
    head, sep, tail = name.rpartition(":")
    return head if sep and "/" not in tail else name


def _match_event(filters: Filters, action: str) -> bool:
    values = filters.get("event")
    if not values:
        return True
    if any(v in _FUZZY_ACTIONS for v in values):
        return any(action == v or action.startswith(v) for v in values)
    return action in values


def _match_name(filters: Filters, msg: Message, type_: str) -> bool:
    """moby's fuzzyMatchName: the actor's ID or name attribute, by prefix (for any event type)."""
    return _fuzzy(filters, type_, msg.Actor.ID, msg.Actor.Attributes.get("name", ""))


def _match_image(filters: Filters, msg: Message) -> bool:
    name = msg.Actor.Attributes.get("name" if msg.Type == "image" else "image", "")
    return _exact(filters, "image", msg.Actor.ID, name, _strip_tag(msg.Actor.ID), _strip_tag(name))


def _match_labels(filters: Filters, attributes: dict[str, str]) -> bool:
    for spec in filters.get("label", []):
        key, sep, value = spec.partition("=")
        if key not in attributes or (sep and attributes[key] != value):
            return False
    return True


def matches(filters: Filters, msg: Message) -> bool:
    """True when `msg` passes every filter (moby's Filter.Include)."""
    return (_match_event(filters, msg.Action)
            and _exact(filters, "type", msg.Type)
            and _exact(filters, "scope", msg.Scope)
            and all(_match_name(filters, msg, t) for t in _NAMED)
            and _match_image(filters, msg)
            and _match_labels(filters, msg.Actor.Attributes))
