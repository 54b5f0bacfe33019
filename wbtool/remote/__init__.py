"""Remotes: where a store's runs and artifacts are shared beyond one machine.

- :mod:`wbtool.remote.fs` is the storage layer: one small interface
  (:class:`~wbtool.remote.fs.Remote`) over a local folder and every object
  store that fsspec reaches. It is the only module that imports fsspec.
- :mod:`wbtool.remote.config` keeps named remotes in the store's
  ``config.yaml``.

Layout of a remote and the order of writes are described in DESIGN.md §3.
The contract tests run against a local folder and a real S3 server (moto);
the same suite against fake-gcs-server (GCS) and Azurite (Azure Blob)
follows with the transfer commands.
"""
