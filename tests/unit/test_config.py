"""Node configuration: sources merge by precedence, bad values are refused naming their option."""

from __future__ import annotations

import tomllib
from dataclasses import fields, replace
from pathlib import Path

import pytest

from turnstile.cluster.config import (
    ConfigError,
    NodeConfig,
    Timing,
    Token,
    config_to_toml,
    is_loopback,
    load_config,
    option_names,
)
from turnstile.cluster.limits import Limits
from turnstile.cluster.peer_auth import read_peer_password
from turnstile.cluster.peers import Peer

pytestmark = pytest.mark.unit

N1 = Peer("n1", "127.0.0.1:7101", "127.0.0.1:7001")
N2 = Peer("n2", "127.0.0.1:7102", "127.0.0.1:7002")
N3 = Peer("n3", "127.0.0.1:7103", "127.0.0.1:7003")
OTHERS_TEXT = ",".join(f"{p.node_id}={p.peer_address}/{p.client_address}" for p in (N2, N3))
PEERS_TEXT = f"n1={N1.peer_address}/{N1.client_address},{OTHERS_TEXT}"

FILE = """\
node_id = "n1"
client_address = "127.0.0.1:7001"
peer_address = "127.0.0.1:7101"
data_dir = "data"
peer_password_file = "secret/peer.pw"

[[peers]]
node_id = "n2"
peer_address = "127.0.0.1:7102"
client_address = "127.0.0.1:7002"

[[peers]]
node_id = "n3"
peer_address = "127.0.0.1:7103"
client_address = "127.0.0.1:7003"
"""


def write(directory: Path, text: str, name: str = "node.toml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def flags(tmp_path: Path) -> dict[str, str]:
    """A complete, valid configuration given by flags alone, for tests to spoil one option."""
    return {
        "node_id": "n1",
        "client_address": N1.client_address,
        "peer_address": N1.peer_address,
        "data_dir": str(tmp_path / "data"),
        "peer_password_file": str(tmp_path / "peer.pw"),
        "peers": PEERS_TEXT,
    }


def refused(flags: dict[str, str], **changes: str | None) -> str:
    """The message load_config refuses ``flags`` with after ``changes`` (None removes one)."""
    merged = {**flags, **changes}
    given = {name: value for name, value in merged.items() if value is not None}
    with pytest.raises(ConfigError) as caught:
        load_config(None, {}, given)
    return str(caught.value)


# --- option names --------------------------------------------------------------------------


def test_option_names_cover_every_field_once() -> None:
    names = option_names()
    assert len(names) == len(set(names))
    assert names[:16] == [
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
    ]
    assert {f"timing.{f.name}" for f in fields(Timing)} <= set(names)
    assert {f"limits.{f.name}" for f in fields(Limits)} <= set(names)
    assert len(names) == 16 + len(fields(Timing)) + len(fields(Limits))


def test_timing_has_exactly_the_five_documented_fields() -> None:
    assert [f.name for f in fields(Timing)] == [
        "election_timeout_min_ms",
        "election_timeout_max_ms",
        "heartbeat_ms",
        "commit_timeout_ms",
        "connection_retry_ms",
    ]


# --- loading and defaults ------------------------------------------------------------------


def test_file_alone_gives_defaults_and_adds_this_node_to_peers(tmp_path: Path) -> None:
    path = write(tmp_path / "conf", FILE)
    config = load_config(path, {}, {})
    assert config.node_id == "n1"
    assert config.peers == (N1, N2, N3)
    assert config.others() == (N2, N3)
    assert config.log_level == "INFO"
    assert config.log_format == "text"
    assert config.durability == "fsync"
    assert config.timing == Timing()
    assert config.limits == Limits()


def test_peers_are_sorted_by_node_id(flags: dict[str, str]) -> None:
    shuffled = f"n3={N3.peer_address}/{N3.client_address},n2={N2.peer_address}/{N2.client_address}"
    config = load_config(None, {}, {**flags, "peers": shuffled})
    assert [peer.node_id for peer in config.peers] == ["n1", "n2", "n3"]


def test_single_node_cluster_lists_only_itself(flags: dict[str, str]) -> None:
    config = load_config(None, {}, {**flags, "peers": f"n1={N1.peer_address}/{N1.client_address}"})
    assert config.peers == (N1,)
    assert config.others() == ()


# --- round trip ----------------------------------------------------------------------------


def test_round_trip_of_a_loaded_config(tmp_path: Path) -> None:
    original = load_config(write(tmp_path / "conf", FILE), {}, {})
    copy_path = write(tmp_path / "elsewhere", config_to_toml(original))
    assert load_config(copy_path, {}, {}) == original


def test_round_trip_of_every_option_changed(tmp_path: Path) -> None:
    odd_dir = tmp_path / 'quote " back \\ tab \t ünï'
    config = NodeConfig(
        node_id="node-1.a_b",
        client_address="[::1]:9001",
        peer_address="[::1]:9101",
        data_dir=odd_dir / "data",
        peer_password_file=odd_dir / "pw",
        peers=(
            Peer("node-1.a_b", "[::1]:9101", "[::1]:9001"),
            Peer("node-2", "example.internal:9102", "example.internal:9002"),
        ),
        log_level="DEBUG",
        log_format="json",
        durability="none",
        timing=Timing(
            election_timeout_min_ms=900,
            election_timeout_max_ms=1800,
            heartbeat_ms=100,
            commit_timeout_ms=7000,
            connection_retry_ms=250,
        ),
        limits=Limits(**{f.name: getattr(Limits(), f.name) + 1 for f in fields(Limits)}),
    )
    path = write(tmp_path, config_to_toml(config))
    assert load_config(path, {}, {}) == config


def test_config_to_toml_writes_every_option_and_absolute_paths(tmp_path: Path) -> None:
    config = load_config(write(tmp_path / "conf", FILE), {}, {})
    document = tomllib.loads(config_to_toml(config))
    for name in option_names():
        section, _, key = name.rpartition(".")
        assert key in (document[section] if section else document), name
    assert document["data_dir"] == str(tmp_path / "conf" / "data")
    assert document["peers"][0] == {
        "node_id": "n1",
        "peer_address": N1.peer_address,
        "client_address": N1.client_address,
    }


# --- precedence ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file_has", "env_has", "flag_has", "expected"),
    [
        (True, True, True, 60),
        (True, True, False, 70),
        (True, False, False, 80),
        (False, False, False, 50),
        (False, True, False, 70),
        (False, False, True, 60),
    ],
)
def test_precedence_flag_over_env_over_file_over_default(
    tmp_path: Path, file_has: bool, env_has: bool, flag_has: bool, expected: int
) -> None:
    text = FILE + ("\n[timing]\nheartbeat_ms = 80\n" if file_has else "")
    env = {"TURNSTILE_TIMING_HEARTBEAT_MS": "70"} if env_has else {}
    flag = {"timing.heartbeat_ms": "60"} if flag_has else {}
    config = load_config(write(tmp_path, text), env, flag)
    assert config.timing.heartbeat_ms == expected


def test_precedence_for_top_level_strings(tmp_path: Path) -> None:
    path = write(tmp_path, 'log_level = "WARNING"\n' + FILE)
    assert load_config(path, {}, {}).log_level == "WARNING"
    assert load_config(path, {"TURNSTILE_LOG_LEVEL": "ERROR"}, {}).log_level == "ERROR"
    both = load_config(path, {"TURNSTILE_LOG_LEVEL": "ERROR"}, {"log_level": "DEBUG"})
    assert both.log_level == "DEBUG"


def test_environment_alone_is_a_complete_source(tmp_path: Path) -> None:
    env = {
        "TURNSTILE_NODE_ID": "n2",
        "TURNSTILE_CLIENT_ADDRESS": N2.client_address,
        "TURNSTILE_PEER_ADDRESS": N2.peer_address,
        "TURNSTILE_DATA_DIR": str(tmp_path / "d"),
        "TURNSTILE_PEER_PASSWORD_FILE": str(tmp_path / "pw"),
        "TURNSTILE_PEERS": PEERS_TEXT,
        "TURNSTILE_LOG_FORMAT": "json",
        "TURNSTILE_LIMITS_MAX_BATCH": "17",
        "UNRELATED": "ignored",
    }
    config = load_config(None, env, {})
    assert config.node_id == "n2"
    assert config.others() == (N1, N3)
    assert config.log_format == "json"
    assert config.limits.max_batch == 17


def test_a_flag_replaces_the_whole_peer_list_of_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, FILE)
    only_n2 = f"n2={N2.peer_address}/{N2.client_address}"
    assert load_config(path, {}, {"peers": only_n2}).peers == (N1, N2)


# --- paths ---------------------------------------------------------------------------------


def test_relative_paths_in_a_file_are_relative_to_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "conf", FILE)
    monkeypatch.chdir(tmp_path)
    config = load_config(Path("conf/node.toml"), {}, {})
    assert config.data_dir == tmp_path / "conf" / "data"
    assert config.peer_password_file == tmp_path / "conf" / "secret" / "peer.pw"


def test_relative_paths_from_env_and_flags_are_relative_to_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "conf", FILE)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    config = load_config(path, {"TURNSTILE_DATA_DIR": "d"}, {"peer_password_file": "p/pw"})
    assert config.data_dir == work / "d"
    assert config.peer_password_file == work / "p" / "pw"


def test_absolute_paths_are_kept(tmp_path: Path) -> None:
    text = FILE.replace('"data"', f'"{tmp_path / "abs"}"')
    config = load_config(write(tmp_path / "conf", text), {}, {})
    assert config.data_dir == tmp_path / "abs"


# --- peers string form ---------------------------------------------------------------------


def test_peers_string_form_tolerates_spaces_and_a_trailing_comma(flags: dict[str, str]) -> None:
    text = (
        f" n2 = {N2.peer_address} / {N2.client_address} , n3={N3.peer_address}/{N3.client_address},"
    )
    assert load_config(None, {}, {**flags, "peers": text}).peers == (N1, N2, N3)


def test_peers_string_form_with_ipv6(flags: dict[str, str]) -> None:
    config = load_config(
        None,
        {},
        {
            **flags,
            "client_address": "[::1]:7001",
            "peer_address": "[::1]:7101",
            "peers": "n2=[::1]:7102/[::1]:7002",
        },
    )
    assert config.peers == (
        Peer("n1", "[::1]:7101", "[::1]:7001"),
        Peer("n2", "[::1]:7102", "[::1]:7002"),
    )


@pytest.mark.parametrize("text", ["n2", "n2=127.0.0.1:7102", "", " , "])
def test_malformed_peers_string(flags: dict[str, str], text: str) -> None:
    assert refused(flags, peers=text).startswith("peers: ")


def test_peers_string_form_is_accepted_in_the_file_too(tmp_path: Path) -> None:
    head = FILE.split("[[peers]]", maxsplit=1)[0]
    config = load_config(
        write(tmp_path, head.replace("data_dir", f'peers = "{PEERS_TEXT}"\ndata_dir')), {}, {}
    )
    assert config.peers == (N1, N2, N3)


# --- unknown options -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "option"),
    [
        ("bogus = 1\n", "bogus"),
        ("heartbeat_ms = 10\n", "heartbeat_ms"),
        ("[timing]\nheartbeat = 10\n", "timing.heartbeat"),
        ("[limits]\nmax_batches = 10\n", "limits.max_batches"),
        ("[tming]\nheartbeat_ms = 10\n", "tming"),
    ],
)
def test_unknown_option_in_the_file_is_named(tmp_path: Path, extra: str, option: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, extra + FILE if "[" not in extra else FILE + extra), {}, {})
    assert str(caught.value).startswith(f"{option}: unknown option {option!r}")
    assert caught.value.option == option


def test_unknown_option_suggests_the_close_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"did you mean 'timing.heartbeat_ms'"):
        load_config(write(tmp_path, "heartbeat_ms = 10\n" + FILE), {}, {})


def test_unknown_flag_is_refused(flags: dict[str, str]) -> None:
    assert refused(flags, **{"timing.heartbeat": "10"}).startswith("timing.heartbeat: unknown")


def test_unknown_key_in_a_peer_table(tmp_path: Path) -> None:
    text = (
        FILE
        + '\n[[peers]]\nnode_id = "n4"\npeer_address = "h:1"\nclient_address = "h:2"\nrole = "x"\n'
    )
    with pytest.raises(ConfigError, match=r"^peers: entry 3 has unknown key 'role'"):
        load_config(write(tmp_path, text), {}, {})


def test_peer_table_missing_a_key(tmp_path: Path) -> None:
    text = FILE + '\n[[peers]]\nnode_id = "n4"\npeer_address = "h:1"\n'
    with pytest.raises(ConfigError, match=r"^peers: entry 3 needs client_address"):
        load_config(write(tmp_path, text), {}, {})


# --- integers ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["abc", "0", "-5", "1.5", "", "5ms"])
def test_integers_from_env_are_parsed_strictly(flags: dict[str, str], value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, {"TURNSTILE_TIMING_COMMIT_TIMEOUT_MS": value}, flags)
    assert str(caught.value).startswith(
        f"timing.commit_timeout_ms: must be a positive integer, got {value!r}"
    )
    assert "TURNSTILE_TIMING_COMMIT_TIMEOUT_MS" in str(caught.value)


def test_integer_from_env_is_accepted(flags: dict[str, str]) -> None:
    config = load_config(None, {"TURNSTILE_LIMITS_MAX_PAGE": "25"}, flags)
    assert config.limits.max_page == 25


@pytest.mark.parametrize("literal", ["true", "50.0", '"50"', "-1", "0"])
def test_integers_in_the_file_must_be_positive_toml_integers(tmp_path: Path, literal: str) -> None:
    with pytest.raises(
        ConfigError, match=r"^timing\.connection_retry_ms: must be a positive integer"
    ):
        load_config(
            write(tmp_path, FILE + f"\n[timing]\nconnection_retry_ms = {literal}\n"), {}, {}
        )


# --- validation, each naming its option ----------------------------------------------------


@pytest.mark.parametrize(
    "option",
    ["node_id", "client_address", "peer_address", "data_dir", "peer_password_file", "peers"],
)
def test_required_option_missing(flags: dict[str, str], option: str) -> None:
    message = refused(flags, **{option: None})
    assert message.startswith(f"{option}: required")
    assert "TURNSTILE_" + option.upper() in message


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("node_id", "has space"),
        ("node_id", "x" * 65),
        ("node_id", ""),
        ("node_id", "n/1"),
        ("client_address", "localhost"),
        ("client_address", ":7001"),
        ("client_address", "127.0.0.1:0"),
        ("client_address", "127.0.0.1:65536"),
        ("client_address", "127.0.0.1:http"),
        ("client_address", "::1:7001"),
        ("peer_address", "[::zz]:7101"),
        ("peer_address", "[::1:7101"),
        ("peer_address", "a,b:7101"),
        ("peer_address", N1.client_address),
        ("data_dir", ""),
        ("log_level", "VERBOSE"),
        ("log_format", "xml"),
        ("durability", "sometimes"),
    ],
)
def test_bad_value_names_its_option(flags: dict[str, str], option: str, value: str) -> None:
    assert refused(flags, **{option: value}).startswith(f"{option}: ")


def test_node_id_of_64_characters_is_accepted(flags: dict[str, str]) -> None:
    long_id = "a" * 64
    config = load_config(None, {}, {**flags, "node_id": long_id, "peers": OTHERS_TEXT})
    assert config.node_id == long_id
    assert config.peers[0] == Peer(long_id, N1.peer_address, N1.client_address)


def test_log_enumerations_are_case_insensitive(flags: dict[str, str]) -> None:
    config = load_config(
        None, {}, {**flags, "log_level": "debug", "log_format": "JSON", "durability": "NONE"}
    )
    assert (config.log_level, config.log_format, config.durability) == ("DEBUG", "json", "none")


def test_strings_in_the_file_must_be_strings(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^log_level: must be a string, got 3"):
        load_config(write(tmp_path, "log_level = 3\n" + FILE), {}, {})


@pytest.mark.parametrize("kind", ["peer_address", "client_address"])
def test_entry_for_this_node_must_match_its_addresses(flags: dict[str, str], kind: str) -> None:
    this = {"peer_address": "127.0.0.1:7109", "client_address": "127.0.0.1:7009"}
    listed = {
        "peer_address": N1.peer_address,
        "client_address": N1.client_address,
        kind: this[kind],
    }
    peers = f"n1={listed['peer_address']}/{listed['client_address']},{OTHERS_TEXT}"
    assert refused(flags, peers=peers) == (
        f"peers: entry for this node n1 has {kind} {this[kind]}, but {kind} is {flags[kind]}"
    )


@pytest.mark.parametrize(
    "peers",
    [
        f"n2={N2.peer_address}/{N2.client_address},n2=127.0.0.1:7109/127.0.0.1:7009",
        f"n2={N2.peer_address}/{N2.client_address},n3={N2.peer_address}/127.0.0.1:7009",
        f"n2={N2.peer_address}/{N2.client_address},n3=127.0.0.1:7109/{N2.client_address}",
        f"n2={N1.peer_address}/{N2.client_address}",
        f"n2={N2.peer_address}/{N2.peer_address}",
        f"bad id={N2.peer_address}/{N2.client_address}",
        f"n2=nohost/{N2.client_address}",
    ],
)
def test_bad_peer_lists(flags: dict[str, str], peers: str) -> None:
    assert refused(flags, peers=peers).startswith("peers: ")


def test_election_window_must_not_be_empty(flags: dict[str, str]) -> None:
    message = refused(
        flags, **{"timing.election_timeout_min_ms": "800", "timing.election_timeout_max_ms": "800"}
    )
    assert message.startswith("timing.election_timeout_min_ms: ")


def test_heartbeat_is_at_most_a_third_of_the_election_timeout(flags: dict[str, str]) -> None:
    too_slow = {"timing.heartbeat_ms": "167", "timing.election_timeout_min_ms": "500"}
    assert refused(flags, **too_slow).startswith("timing.heartbeat_ms: ")
    config = load_config(None, {}, {**flags, "timing.heartbeat_ms": "166"})
    assert config.timing.heartbeat_ms == 166


def test_limits_problems_name_the_limit(flags: dict[str, str]) -> None:
    inverted = {"limits.min_session_ttl_ms": "5000", "limits.max_session_ttl_ms": "4000"}
    assert refused(flags, **inverted).startswith("limits.min_session_ttl_ms: must not exceed")
    assert refused(flags, **{"limits.max_batch": "0"}).startswith("limits.max_batch: ")


def test_unreadable_or_invalid_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^config: cannot read"):
        load_config(tmp_path / "missing.toml", {}, {})
    with pytest.raises(ConfigError, match=r"^config: .* is not valid TOML"):
        load_config(write(tmp_path, "node_id = \n"), {}, {})


def test_section_must_be_a_table(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^timing: must be a table"):
        load_config(write(tmp_path, "timing = 5\n" + FILE), {}, {})


def test_config_error_is_a_value_error_and_names_its_option(flags: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"^node_id: ") as caught:
        load_config(None, {}, {**flags, "node_id": "?"})
    assert isinstance(caught.value, ConfigError)
    assert caught.value.option == "node_id"


# --- peer password -------------------------------------------------------------------------


def config_with_password(flags: dict[str, str], text: str | None) -> NodeConfig:
    config = load_config(None, {}, flags)
    if text is not None:
        config.peer_password_file.write_text(text, encoding="utf-8")
    return config


def test_password_is_read_and_stripped(flags: dict[str, str]) -> None:
    config = config_with_password(flags, "  0123456789abcdef \n")
    assert read_peer_password(config.peer_password_file) == "0123456789abcdef"


@pytest.mark.parametrize(
    ("text", "match"),
    [(None, "cannot read"), ("", "is empty"), (" \n", "is empty"), ("0123456789abcde", "15 char")],
)
def test_bad_password_file(flags: dict[str, str], text: str | None, match: str) -> None:
    config = config_with_password(flags, text)
    with pytest.raises(ConfigError, match=rf"^peer_password_file: .*{match}"):
        read_peer_password(config.peer_password_file)


def test_password_is_not_in_the_error(flags: dict[str, str]) -> None:
    config = config_with_password(flags, "short-secret")
    with pytest.raises(ConfigError) as caught:
        read_peer_password(config.peer_password_file)
    assert "short-secret" not in str(caught.value)


def test_directory_as_password_file(flags: dict[str, str], tmp_path: Path) -> None:
    config = replace(config_with_password(flags, None), peer_password_file=tmp_path)
    with pytest.raises(ConfigError, match=r"^peer_password_file: cannot read"):
        read_peer_password(config.peer_password_file)


def test_metrics_address_is_checked_and_optional(tmp_path: Path, flags: dict[str, str]) -> None:
    path = tmp_path / "node.toml"
    path.write_text(config_to_toml(load_config(None, env={}, flags=flags)))
    assert load_config(path, env={}, flags={}).metrics_address == ""
    with_metrics = load_config(path, env={"TURNSTILE_METRICS_ADDRESS": "127.0.0.1:9100"}, flags={})
    assert with_metrics.metrics_address == "127.0.0.1:9100"
    path.write_text(config_to_toml(with_metrics))
    assert load_config(path, env={}, flags={}) == with_metrics
    assert refused(flags, metrics_address="nonsense").startswith("metrics_address: ")
    assert refused(flags, metrics_address=N1.client_address).startswith("metrics_address: ")


def test_integers_beyond_64_bits_are_refused(flags: dict[str, str]) -> None:
    message = refused(flags, **{"limits.max_sessions": str(2**70)})
    assert message.startswith("limits.max_sessions: must be at most")


# --- client-port security --------------------------------------------------------------------

HASH = "ab" * 32
REMOTE = {
    "client_address": "10.0.0.1:7001",
    "peers": f"n1={N1.peer_address}/10.0.0.1:7001,{OTHERS_TEXT}",
}


def test_security_defaults_are_off_and_fine_on_loopback(flags: dict[str, str]) -> None:
    config = load_config(None, {}, flags)
    assert config.tokens == ()
    assert config.tls_cert_file is None
    assert config.tls_client_ca_file is None
    assert config.insecure is False


def test_off_the_loopback_tls_and_tokens_are_required(flags: dict[str, str]) -> None:
    assert refused(flags, **REMOTE).startswith("tls_cert_file: required because client_address")
    tls = {"tls_cert_file": "node.pem", "tls_key_file": "node.key"}
    assert refused(flags, **REMOTE, **tls).startswith("tokens: required because client_address")
    config = load_config(None, {}, {**flags, **REMOTE, **tls, "tokens": f"fleet:worker:{HASH}"})
    assert config.tokens == (Token("fleet", "worker", HASH),)


@pytest.mark.parametrize("value", ["true", "1", "yes", "ON"])
def test_insecure_allows_plaintext_without_tokens_off_the_loopback(
    flags: dict[str, str], value: str
) -> None:
    assert load_config(None, {}, {**flags, **REMOTE, "insecure": value}).insecure


def test_insecure_must_be_a_boolean(flags: dict[str, str], tmp_path: Path) -> None:
    assert refused(flags, insecure="maybe").startswith("insecure: must be true or false")
    path = write(tmp_path / "conf", 'insecure = "true"\n' + FILE)
    with pytest.raises(ConfigError, match="insecure: must be true or false"):
        load_config(path, {}, {})


@pytest.mark.parametrize(
    ("changes", "option"),
    [
        ({"tls_cert_file": "node.pem"}, "tls_key_file"),
        ({"tls_key_file": "node.key"}, "tls_cert_file"),
        ({"tls_client_ca_file": "ca.pem"}, "tls_client_ca_file"),
    ],
)
def test_tls_files_go_together(flags: dict[str, str], changes: dict[str, str], option: str) -> None:
    assert refused(flags, **changes).startswith(f"{option}: ")


@pytest.mark.parametrize(
    ("tokens", "match"),
    [
        ("fleet:worker", "must be name:role:sha256"),
        (f"fleet:root:{HASH}", "role of fleet must be one of worker, admin"),
        ("fleet:worker:my-plain-token", "64 lower-case hex digits"),
        (f"fleet:worker:{HASH.upper()}", "64 lower-case hex digits"),
        (f"fleet:worker:{HASH},fleet:admin:{'cd' * 32}", "name 'fleet' is listed twice"),
        (f"a:worker:{HASH},b:admin:{HASH}", "hash of b is listed twice"),
        (f"bad name:worker:{HASH}", "tokens: name must be"),
    ],
)
def test_bad_tokens(flags: dict[str, str], tokens: str, match: str) -> None:
    message = refused(flags, tokens=tokens)
    assert message.startswith("tokens: ")
    assert match in message


def test_token_tables_and_tls_paths_in_a_file(tmp_path: Path) -> None:
    text = FILE.replace(
        'peer_password_file = "secret/peer.pw"\n',
        'peer_password_file = "secret/peer.pw"\n'
        'tls_cert_file = "tls/n1.pem"\ntls_key_file = "tls/n1.key"\n'
        'tls_client_ca_file = "tls/ca.pem"\n',
    )
    text += f'\n[[tokens]]\nname = "ops"\nrole = "admin"\nsha256 = "{HASH}"\n'
    config = load_config(write(tmp_path / "conf", text), {}, {})
    assert config.tls_cert_file == tmp_path / "conf" / "tls" / "n1.pem"
    assert config.tls_client_ca_file == tmp_path / "conf" / "tls" / "ca.pem"
    assert config.tokens == (Token("ops", "admin", HASH),)
    copy = write(tmp_path / "elsewhere", config_to_toml(config))
    assert load_config(copy, {}, {}) == config


def test_token_table_with_an_unknown_key(tmp_path: Path) -> None:
    text = FILE + f'\n[[tokens]]\nname = "ops"\nrole = "admin"\ntoken = "{HASH}"\n'
    with pytest.raises(ConfigError, match="tokens: entry 1 has unknown key 'token'"):
        load_config(write(tmp_path / "conf", text), {}, {})


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1:1", True),
        ("127.9.9.9:1", True),
        ("[::1]:1", True),
        ("localhost:1", True),
        ("10.0.0.1:1", False),
        ("[::]:1", False),
        ("0.0.0.0:1", False),
        ("node1.example:1", False),
    ],
)
def test_is_loopback(address: str, loopback: bool) -> None:
    assert is_loopback(address) is loopback
