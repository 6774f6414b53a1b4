"""Node configuration: one frozen ``NodeConfig`` from a TOML file, the environment and flags.

Every option has one dotted name (``node_id``, ``timing.heartbeat_ms``, ``limits.max_batch``).
The same name keys the flags mapping, derives the environment variable (``TURNSTILE_`` + the
name upper-cased, dots as underscores) and, split at the dot, locates the key in the file. A
value is taken from the first source that sets it: flag, then environment, then file, then the
default. Bad configuration is refused at start with a ``ConfigError`` whose message begins with
the option's name, so an operator knows which line to fix rather than meeting a crash later.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from turnstile.cluster.limits import Limits
from turnstile.cluster.peers import (
    NODE_ID,
    NODE_ID_RULE,
    Peer,
    address_problem,
    cluster_problem,
    with_this_node,
)
from turnstile.v1.timeouts import COMMIT_TIMEOUT_MS

#: Prefix of every environment variable the loader reads.
ENV_PREFIX = "TURNSTILE_"
#: Name used in errors about the configuration file itself (the CLI's ``--config``).
CONFIG_OPTION = "config"
#: Largest integer option: every value travels as a signed 64-bit integer.
MAX_INT = 2**63 - 1
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")
#: ``durability``: sync the Raft log before an entry counts (the default), or never.
DURABILITY_MODES = ("fsync", "none")
#: Client roles: workers use sessions, locks and lists; admins may also operate the cluster.
ROLES = ("worker", "admin")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


class ConfigError(ValueError):
    """A bad option. The message starts with the option's dotted name, then ``": "``."""

    @property
    def option(self) -> str:
        """The option named at the start of the message."""
        return str(self).split(":", 1)[0]


@dataclass(frozen=True, slots=True)
class Token:
    """One bearer token a client may present, stored as its SHA-256 so the config holds no
    secret (``turnstile token hash`` prints it)."""

    #: Who holds it, for logs: a fleet, a person, a job.
    name: str
    #: ``worker`` or ``admin``.
    role: str
    #: Lower-case hex SHA-256 of the token's UTF-8 bytes.
    sha256: str


@dataclass(frozen=True, slots=True)
class Timing:
    """Raft and connection timing; defaults suit a LAN with sub-millisecond round trips."""

    #: Followers wait a random time in [min, max) without heartbeats before standing for leader.
    election_timeout_min_ms: int = 500
    election_timeout_max_ms: int = 1000
    #: Raft append-entries period; at most a third of the shortest election timeout.
    heartbeat_ms: int = 50
    #: How long a proposal may wait for commit before the caller gets UNKNOWN_OUTCOME
    #: (the budget it fits in: ``turnstile.v1.timeouts``).
    commit_timeout_ms: int = COMMIT_TIMEOUT_MS
    #: Reconnect period to a lost peer.
    connection_retry_ms: int = 300


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Everything one node needs to start; built and checked by ``load_config``."""

    node_id: str
    client_address: str
    peer_address: str
    data_dir: Path
    peer_password_file: Path
    #: All members of the cluster, this node included, sorted by node_id.
    peers: tuple[Peer, ...]
    log_level: str = "INFO"
    log_format: str = "text"
    #: "fsync": a log entry counts toward commit only once it is on disk; "none": log
    #: entries are never synced (a power loss can lose acknowledged writes; see
    #: docs/operations.md). Term and vote are synced before a vote in either mode.
    durability: str = "fsync"
    #: host:port serving Prometheus metrics over HTTP; empty: no metrics endpoint.
    metrics_address: str = ""
    #: PEM certificate chain and key of the client port; None: plaintext.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    #: PEM CA bundle; when set, clients must present a certificate it signed (mutual TLS).
    tls_client_ca_file: Path | None = None
    #: Accepted bearer tokens; empty: no authentication (loopback or ``insecure`` only).
    tokens: tuple[Token, ...] = ()
    #: Allows a non-loopback client address without TLS or without tokens.
    insecure: bool = False
    #: A follower forwards its session streams' calls to the leader; off: NOT_LEADER.
    forward_streams: bool = True
    timing: Timing = field(default_factory=Timing)
    limits: Limits = field(default_factory=Limits)

    def others(self) -> tuple[Peer, ...]:
        """The members this node replicates to: every peer except itself."""
        return tuple(peer for peer in self.peers if peer.node_id != self.node_id)


_TOP_LEVEL = (
    "node_id",
    "client_address",
    "peer_address",
    "data_dir",
    "peer_password_file",
    "log_level",
    "log_format",
    "durability",
    "metrics_address",
    "peers",
    "tls_cert_file",
    "tls_key_file",
    "tls_client_ca_file",
    "tokens",
    "insecure",
    "forward_streams",
)
_PATHS = ("data_dir", "peer_password_file")
#: Paths that may be left unset (an empty string also means unset).
_OPTIONAL_PATHS = ("tls_cert_file", "tls_key_file", "tls_client_ca_file")
#: Written as tables or literals by ``config_to_toml``, not as strings.
_STRUCTURED = ("peers", "tokens", "insecure", "forward_streams")
_STRINGS = tuple(
    name for name in _TOP_LEVEL if name not in (*_PATHS, *_OPTIONAL_PATHS, *_STRUCTURED)
)
_REQUIRED = ("node_id", "client_address", "peer_address", "data_dir", "peer_password_file", "peers")
_SECTIONS: dict[str, tuple[str, ...]] = {
    "timing": tuple(f.name for f in fields(Timing)),
    "limits": tuple(f.name for f in fields(Limits)),
}
_PEER_KEYS = ("node_id", "peer_address", "client_address")
_TOKEN_KEYS = ("name", "role", "sha256")


def option_names() -> list[str]:
    """Every dotted option name, in documentation order; the CLI derives its flags from it."""
    return [
        *_TOP_LEVEL,
        *(f"{section}.{name}" for section, names in _SECTIONS.items() for name in names),
    ]


@dataclass(frozen=True, slots=True)
class _Raw:
    """One option's value as a source gave it, with what is needed to interpret and blame it."""

    value: object
    #: Where it came from, for error messages: a file path, a variable or a flag.
    origin: str
    #: Directory a relative path is resolved against; None means the current directory.
    base: Path | None
    #: True for env and flags: the value is text to parse, not a typed TOML value.
    text: bool


def load_config(path: Path | None, env: Mapping[str, str], flags: Mapping[str, str]) -> NodeConfig:
    """Merge flags over env over the file over defaults, then check everything.

    ``flags`` is keyed by dotted option name and holds only the flags actually given. Raises
    ``ConfigError`` for the first problem found, naming its option.
    """
    raw: dict[str, _Raw] = {}
    if path is not None:
        raw.update(_read_file(path))
    known = option_names()
    for name in known:
        variable = _env_var(name)
        if variable in env:
            raw[name] = _Raw(env[variable], variable, None, text=True)
    for name, value in flags.items():
        if name not in known:
            raise _unknown(name)
        raw[name] = _Raw(value, _flag(name), None, text=True)
    return _build(raw)


def config_to_toml(config: NodeConfig) -> str:
    """A TOML document that ``load_config`` reads back to an equal config.

    Every option is written, defaults included, so an operator reading a node.toml sees the
    values in force without looking them up; paths are absolute so the file can move.
    """
    lines = ["# Turnstile node configuration.", ""]
    for name in _TOP_LEVEL:
        if name in _STRUCTURED:
            continue
        value = getattr(config, name)
        text = str(value.absolute()) if isinstance(value, Path) else value or ""
        lines.append(f"{name} = {_toml_string(text)}")
    lines.append(f"insecure = {'true' if config.insecure else 'false'}")
    lines.append(f"forward_streams = {'true' if config.forward_streams else 'false'}")
    if not config.tokens:
        lines.append("tokens = []")
    for section, names in _SECTIONS.items():
        values = getattr(config, section)
        lines += ["", f"[{section}]", *(f"{name} = {getattr(values, name)}" for name in names)]
    for peer in config.peers:
        lines += ["", "[[peers]]"]
        lines += [f"{key} = {_toml_string(getattr(peer, key))}" for key in _PEER_KEYS]
    for token in config.tokens:
        lines += ["", "[[tokens]]"]
        lines += [f"{key} = {_toml_string(getattr(token, key))}" for key in _TOKEN_KEYS]
    return "\n".join(lines) + "\n"


def _env_var(name: str) -> str:
    return ENV_PREFIX + name.upper().replace(".", "_")


def _flag(name: str) -> str:
    return "--" + name.replace(".", "-").replace("_", "-")


def _unknown(name: str) -> ConfigError:
    """Unknown names are refused, not ignored: a typo must not silently leave a default."""
    close = difflib.get_close_matches(name, [*option_names(), *_SECTIONS], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"{name}: unknown option {name!r}{hint}")


def _read_file(path: Path) -> dict[str, _Raw]:
    """The file's options by dotted name; relative paths in it are relative to its directory."""
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{CONFIG_OPTION}: cannot read {path}: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{CONFIG_OPTION}: {path} is not valid TOML: {exc}") from exc
    base = path.absolute().parent
    origin = str(path)
    raw: dict[str, _Raw] = {}
    for key, value in document.items():
        if key in _SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{key}: must be a table, got {value!r} (from {origin})")
            for sub, sub_value in value.items():
                name = f"{key}.{sub}"
                if sub not in _SECTIONS[key]:
                    raise _unknown(name)
                raw[name] = _Raw(sub_value, origin, base, text=False)
        elif key in _TOP_LEVEL:
            raw[key] = _Raw(value, origin, base, text=False)
        else:
            raise _unknown(key)
    return raw


def _build(raw: Mapping[str, _Raw]) -> NodeConfig:
    """Check each option on its own in documentation order, then the ones that constrain others."""
    for name in _REQUIRED:
        if name not in raw:
            raise ConfigError(
                f"{name}: required; set it in the config file, with {_flag(name)} "
                f"or with {_env_var(name)}"
            )
    strings = {name: _string(name, raw[name]) for name in _STRINGS if name in raw}
    node_id = strings["node_id"]
    if not NODE_ID.fullmatch(node_id):
        raise ConfigError(f"node_id: {NODE_ID_RULE}, got {node_id!r}")
    for name in ("client_address", "peer_address"):
        problem = address_problem(strings[name])
        if problem:
            raise ConfigError(f"{name}: {problem}")
    if strings["client_address"] == strings["peer_address"]:
        raise ConfigError(
            f"peer_address: must differ from client_address {strings['peer_address']!r}"
        )
    paths = {name: _path(name, raw[name]) for name in _PATHS}
    tls = {name: _optional_path(name, raw.get(name)) for name in _OPTIONAL_PATHS}
    log_level = strings.get("log_level", "INFO").upper()
    if log_level not in LOG_LEVELS:
        raise ConfigError(f"log_level: must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}")
    log_format = strings.get("log_format", "text").lower()
    if log_format not in LOG_FORMATS:
        raise ConfigError(
            f"log_format: must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}"
        )
    durability = strings.get("durability", "fsync").lower()
    if durability not in DURABILITY_MODES:
        raise ConfigError(
            f"durability: must be one of {', '.join(DURABILITY_MODES)}, got {durability!r}"
        )
    metrics_address = strings.get("metrics_address", "")
    if metrics_address:
        problem = address_problem(metrics_address)
        if problem:
            raise ConfigError(f"metrics_address: {problem}")
        if metrics_address in (strings["client_address"], strings["peer_address"]):
            raise ConfigError(
                f"metrics_address: must differ from client_address and peer_address, "
                f"got {metrics_address!r}"
            )
    this = Peer(node_id, strings["peer_address"], strings["client_address"])
    peers = _check_peers(this, _peers(raw["peers"]))
    tokens = _check_tokens(_tokens(raw["tokens"]) if "tokens" in raw else [])
    insecure = _bool("insecure", raw["insecure"]) if "insecure" in raw else False
    forward = _bool("forward_streams", raw["forward_streams"]) if "forward_streams" in raw else True
    _check_security(this.client_address, tls, tokens, insecure)
    ints = {
        section: {
            name: _positive_int(f"{section}.{name}", raw[f"{section}.{name}"])
            for name in names
            if f"{section}.{name}" in raw
        }
        for section, names in _SECTIONS.items()
    }
    timing = Timing(**ints["timing"])
    _check_timing(timing)
    limits = Limits(**ints["limits"])
    problems = limits.problems()
    if problems:
        # Limits names the field first: "max_batch must be ...".
        name, _, detail = problems[0].partition(" ")
        raise ConfigError(f"limits.{name}: {detail}")
    return NodeConfig(
        node_id=node_id,
        client_address=this.client_address,
        peer_address=this.peer_address,
        data_dir=paths["data_dir"],
        peer_password_file=paths["peer_password_file"],
        peers=peers,
        log_level=log_level,
        log_format=log_format,
        durability=durability,
        metrics_address=metrics_address,
        tls_cert_file=tls["tls_cert_file"],
        tls_key_file=tls["tls_key_file"],
        tls_client_ca_file=tls["tls_client_ca_file"],
        tokens=tokens,
        insecure=insecure,
        forward_streams=forward,
        timing=timing,
        limits=limits,
    )


def _string(name: str, raw: _Raw) -> str:
    if not isinstance(raw.value, str):
        raise ConfigError(f"{name}: must be a string, got {raw.value!r} (from {raw.origin})")
    return raw.value


def _path(name: str, raw: _Raw) -> Path:
    """Relative to the file that set it, or to the current directory for env and flags."""
    text = _string(name, raw)
    if not text:
        raise ConfigError(f"{name}: must not be empty (from {raw.origin})")
    path = Path(text)
    if path.is_absolute():
        return path
    return (raw.base or Path.cwd()) / path


def _optional_path(name: str, raw: _Raw | None) -> Path | None:
    """Like ``_path``, but unset or empty means None."""
    if raw is None or raw.value == "":
        return None
    return _path(name, raw)


def _bool(name: str, raw: _Raw) -> bool:
    """A TOML boolean, or true/false (1/0, yes/no, on/off) from env and flags."""
    value = raw.value
    if isinstance(value, bool):
        return value
    if raw.text and isinstance(value, str) and value.strip().lower() in (*_TRUE, *_FALSE):
        return value.strip().lower() in _TRUE
    raise ConfigError(f"{name}: must be true or false, got {value!r} (from {raw.origin})")


def _positive_int(name: str, raw: _Raw) -> int:
    """Strict: TOML must hold an int (not a bool, float or string); env and flags go via int()."""
    value = raw.value
    number: int | None = None
    if raw.text and isinstance(value, str):
        try:
            number = int(value)
        except ValueError:
            number = None
    elif type(value) is int:
        number = value
    if number is None or number <= 0:
        raise ConfigError(f"{name}: must be a positive integer, got {value!r} (from {raw.origin})")
    if number > MAX_INT:
        raise ConfigError(f"{name}: must be at most {MAX_INT}, got {number} (from {raw.origin})")
    return number


def _peers(raw: _Raw) -> list[Peer]:
    """Either the string form (env, flags) or the file's ``[[peers]]`` tables."""
    value = raw.value
    if isinstance(value, str):
        return [_parse_peer(item, raw.origin) for item in value.split(",") if item.strip()]
    if not isinstance(value, list):
        raise ConfigError(
            f"peers: must be [[peers]] tables or 'id=peer_host:port/client_host:port,...', "
            f"got {value!r} (from {raw.origin})"
        )
    return [_peer_table(index, entry, raw.origin) for index, entry in enumerate(value, 1)]


def _parse_peer(item: str, origin: str) -> Peer:
    node_id, equals, addresses = item.strip().partition("=")
    peer_address, slash, client_address = addresses.partition("/")
    if not equals or not slash:
        raise ConfigError(
            f"peers: entry {item.strip()!r} must be node_id=peer_address/client_address "
            f"(from {origin})"
        )
    return Peer(node_id.strip(), peer_address.strip(), client_address.strip())


def _peer_table(index: int, entry: object, origin: str) -> Peer:
    if not isinstance(entry, dict):
        raise ConfigError(f"peers: entry {index} must be a table, got {entry!r} (from {origin})")
    for key in entry:
        if key not in _PEER_KEYS:
            raise ConfigError(f"peers: entry {index} has unknown key {key!r} (from {origin})")
    for key in _PEER_KEYS:
        if not isinstance(entry.get(key), str):
            raise ConfigError(f"peers: entry {index} needs {key} as a string (from {origin})")
    return Peer(entry["node_id"], entry["peer_address"], entry["client_address"])


def _check_peers(this: Peer, peers: list[Peer]) -> tuple[Peer, ...]:
    """Every member valid and distinct, and this node agreeing with itself; sorted by node_id.

    Listing only the other members is allowed: this node is added from its own options.
    """
    if not peers:
        raise ConfigError("peers: must list at least one node")
    problem = cluster_problem(this, peers)
    if problem:
        raise ConfigError(f"peers: {problem}")
    return with_this_node(this, peers)


def _tokens(raw: _Raw) -> list[Token]:
    """Either the string form ``name:role:sha256,...`` (env, flags) or ``[[tokens]]`` tables."""
    value = raw.value
    if isinstance(value, str):
        tokens = []
        for item in value.split(","):
            if not item.strip():
                continue
            parts = [part.strip() for part in item.split(":")]
            if len(parts) != 3:
                raise ConfigError(
                    f"tokens: entry {item.strip()!r} must be name:role:sha256 (from {raw.origin})"
                )
            tokens.append(Token(*parts))
        return tokens
    if not isinstance(value, list):
        raise ConfigError(
            f"tokens: must be [[tokens]] tables or 'name:role:sha256,...', got {value!r} "
            f"(from {raw.origin})"
        )
    tokens = []
    for index, entry in enumerate(value, 1):
        if not isinstance(entry, dict):
            raise ConfigError(f"tokens: entry {index} must be a table (from {raw.origin})")
        for key in entry:
            if key not in _TOKEN_KEYS:
                raise ConfigError(
                    f"tokens: entry {index} has unknown key {key!r} (from {raw.origin})"
                )
        for key in _TOKEN_KEYS:
            if not isinstance(entry.get(key), str):
                raise ConfigError(
                    f"tokens: entry {index} needs {key} as a string (from {raw.origin})"
                )
        tokens.append(Token(entry["name"], entry["role"], entry["sha256"]))
    return tokens


def _check_tokens(tokens: list[Token]) -> tuple[Token, ...]:
    """Every token named, with a known role and a well-formed, unique hash."""
    names: set[str] = set()
    hashes: set[str] = set()
    for token in tokens:
        if not NODE_ID.fullmatch(token.name):
            raise ConfigError(f"tokens: name {NODE_ID_RULE}, got {token.name!r}")
        if token.role not in ROLES:
            raise ConfigError(
                f"tokens: role of {token.name} must be one of {', '.join(ROLES)}, "
                f"got {token.role!r}"
            )
        if not _SHA256_HEX.fullmatch(token.sha256):
            raise ConfigError(
                f"tokens: sha256 of {token.name} must be 64 lower-case hex digits "
                "(turnstile token hash prints it), not the token itself"
            )
        if token.name in names:
            raise ConfigError(f"tokens: name {token.name!r} is listed twice")
        if token.sha256 in hashes:
            raise ConfigError(f"tokens: the hash of {token.name} is listed twice")
        names.add(token.name)
        hashes.add(token.sha256)
    return tuple(tokens)


def is_loopback(address: str) -> bool:
    """Whether a host:port names this machine's loopback interface (localhost, 127/8, ::1)."""
    host = address.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_security(
    client_address: str, tls: Mapping[str, Path | None], tokens: tuple[Token, ...], insecure: bool
) -> None:
    """TLS files that make sense together; TLS and tokens off the loopback unless insecure."""
    if (tls["tls_cert_file"] is None) != (tls["tls_key_file"] is None):
        missing = "tls_key_file" if tls["tls_key_file"] is None else "tls_cert_file"
        raise ConfigError(f"{missing}: tls_cert_file and tls_key_file are set together")
    if tls["tls_client_ca_file"] is not None and tls["tls_cert_file"] is None:
        raise ConfigError(
            "tls_client_ca_file: mutual TLS needs tls_cert_file and tls_key_file as well"
        )
    if insecure or is_loopback(client_address):
        return
    if tls["tls_cert_file"] is None:
        raise ConfigError(
            f"tls_cert_file: required because client_address {client_address} is not a "
            "loopback address (or set insecure = true to serve plaintext)"
        )
    if not tokens:
        raise ConfigError(
            f"tokens: required because client_address {client_address} is not a loopback "
            "address (or set insecure = true to run without authentication)"
        )


def _check_timing(timing: Timing) -> None:
    """Relations Raft needs: a real election window, and heartbeats well inside it."""
    if timing.election_timeout_min_ms >= timing.election_timeout_max_ms:
        raise ConfigError(
            f"timing.election_timeout_min_ms: must be less than timing.election_timeout_max_ms "
            f"({timing.election_timeout_min_ms} >= {timing.election_timeout_max_ms})"
        )
    if timing.heartbeat_ms * 3 > timing.election_timeout_min_ms:
        raise ConfigError(
            f"timing.heartbeat_ms: must be at most a third of timing.election_timeout_min_ms "
            f"so followers do not time out between heartbeats "
            f"({timing.heartbeat_ms} * 3 > {timing.election_timeout_min_ms})"
        )


_TOML_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def _toml_string(text: str) -> str:
    """A TOML basic string; control characters escaped as TOML requires."""
    out = []
    for char in text:
        if char in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'
