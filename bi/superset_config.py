"""Superset configuration for the KAP clinic-operations dashboard (found via SUPERSET_CONFIG_PATH).

Everything Superset keeps lives in KAP_BI_HOME (KAP_HOME/bi): its SQLite metadata DB and the
secret key, generated on first start by bi/kap_bi.py and readable by the owner only.
"""
import os
from pathlib import Path

_HOME = Path(os.environ["KAP_BI_HOME"])

SECRET_KEY = (_HOME / "secret_key").read_text(encoding="utf-8").strip()
SQLALCHEMY_DATABASE_URI = f"sqlite:///{_HOME / 'superset.db'}"
FEATURE_FLAGS = {"DASHBOARD_NATIVE_FILTERS": True}
# Served on 127.0.0.1 only, without TLS: no HTTPS redirect or strict transport headers.
TALISMAN_ENABLED = False
SESSION_COOKIE_SECURE = False
# No telemetry, no example data, no outside calls.
SUPERSET_LOG_VIEW = False
ENABLE_PROXY_FIX = False
ROW_LIMIT = 10000
