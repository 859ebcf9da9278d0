"""Settings for *where* things are, from the environment (prefix ``STREAMFIT_``).

>>> Settings(database_url="sqlite:///x.db").database_url
'sqlite:///x.db'
"""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Connection settings; the spec says *what* a pipeline does, these say *where*."""

    model_config = SettingsConfigDict(env_prefix="STREAMFIT_", extra="ignore")

    database_url: str = "sqlite:///streamfit.db"
    kafka_bootstrap: str | None = None  # used when the spec names no bootstrap_servers
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    log_level: str = "INFO"
    worker_id: str = "0"  # workers of one pipeline need distinct ids (their state is theirs)
    keep_freed_memory: bool = True  # raise glibc's malloc thresholds (runtime.allocator)
