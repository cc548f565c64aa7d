"""Pure rules of the manager: log redaction, cluster scoring, password hashing, config checks."""

from __future__ import annotations

import logging

import pytest

from p2p.common.config import ConfigError, load_config
from p2p.manager.auth import check_password, hash_password, token_hash
from p2p.manager.config import ManagerConfig
from p2p.manager.models import SchedulerCluster
from p2p.manager.redact import RedactingFilter, redact
from p2p.manager.service import _cluster_score, _location_prefix


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("Authorization: Bearer dfs_abcDEF123-_x", "dfs_abcDEF123-_x"),
        ("headers={'Authorization': 'Bearer eyJhbGciOi.xyz'}", "eyJhbGciOi.xyz"),
        ("token dfp_Zm9vYmFyYmF6 used", "Zm9vYmFyYmF6"),
        ('{"name": "root", "password": "hunter22"}', "hunter22"),
        ("secret_key=AKIAsecretvalue9 region=x", "AKIAsecretvalue9"),
        ("Cookie: session=abc123def", "abc123def"),
        ("postgresql+psycopg://postgres:pgpass99@127.0.0.1/test", "pgpass99"),
    ],
)
def test_redact_masks_credentials(line: str, secret: str) -> None:
    out = redact(line)
    assert secret not in out and "***" in out


def test_redacting_filter_rewrites_args_and_tracebacks() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "sent %s", ("Bearer dfp_topsecret",), None)
    assert RedactingFilter().filter(record)
    assert "topsecret" not in record.getMessage()
    try:
        raise ValueError("password=leaky1")
    except ValueError:
        import sys

        rec = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", None, sys.exc_info())
    RedactingFilter().filter(rec)
    assert rec.exc_text and "leaky1" not in rec.exc_text


def test_cluster_score_follows_the_searcher_weights() -> None:
    c = SchedulerCluster(name="c", scopes={"idc": "a|b", "location": "cn|zj|hz", "cidrs": ["10.0.0.0/8"]},
                         is_default=True)
    assert _cluster_score(c, "10.1.2.3", "b", "cn|zj|hz") == pytest.approx(1.0)
    assert _cluster_score(c, "192.168.0.1", "", "") == pytest.approx(0.01)
    assert _cluster_score(c, "10.1.2.3", "", "") == pytest.approx(0.41)
    assert _location_prefix("cn|zj|sh", "cn|zj|hz") == pytest.approx(0.4)
    assert _location_prefix("", "cn") == 0


def test_password_and_token_hashing() -> None:
    stored = hash_password("correct horse")
    assert "correct horse" not in stored and check_password("correct horse", stored)
    assert not check_password("wrong", stored) and not check_password("x", "garbage")
    assert hash_password("a") != hash_password("a")  # salted
    assert len(token_hash("dfp_x")) == 64


def test_config_rules() -> None:
    with pytest.raises(ConfigError, match="tls"):
        load_config(ManagerConfig, overrides={"server": {"rest": {"tls": {"cert": "/c.pem"}}}})
    with pytest.raises(ConfigError, match=r"database\.type"):
        load_config(ManagerConfig, overrides={"database": {"type": "oracle"}})
    cfg = load_config(ManagerConfig, env_prefix="DFLY_MANAGER",
                      environ={"DFLY_MANAGER__OBJECT_STORAGE__SECRET_KEY": "s3cr3t",
                               "DFLY_MANAGER__SERVER__REST__PORT": "9000"})
    assert cfg.server.rest.port == 9000 and "s3cr3t" not in repr(cfg)
