"""The real-server fixtures, for the tests of the servers themselves."""

from tests.servers.fixtures import (  # noqa: F401 - fixtures are found by name
    _dask_cluster,
    _jupyter_server,
    _postgres_server,
    dask_cluster,
    jupyter_server,
    postgres,
)
