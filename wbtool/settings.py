"""``wbtool.Settings``: the reference's settings that mean something locally.

Values are validated when set: an unknown name or a value of the wrong type
is a :class:`SettingsError` naming the setting, never a silent default. The
reference's settings that mean something only to a server are accepted,
said to be ignored, and not kept (:data:`SERVER_ONLY`).

Precedence, lowest first: defaults, the system settings file, the workspace
settings file, ``WBTOOL_*`` environment variables, explicit values
(``wbtool.Settings(...)`` or ``init`` arguments). :func:`load` resolves them
once and records where each effective value came from.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from wbtool.errors import SettingsError

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f"}


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in _TRUE | _FALSE:
        return v.strip().lower() in _TRUE
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    raise ValueError("expected true or false")


def _opt_bool(v: Any) -> bool | None:
    return None if v is None else _bool(v)


def _int(v: Any) -> int:
    if isinstance(v, bool):
        raise ValueError("expected an integer")
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        return int(v.strip())
    raise ValueError("expected an integer")


def _opt_int(v: Any) -> int | None:
    return None if v is None else _int(v)


def _float(v: Any) -> float:
    if isinstance(v, bool):
        raise ValueError("expected a number")
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        return float(v.strip())
    raise ValueError("expected a number")


# The shortest system metrics sampling interval taken, in seconds: shorter
# ones would write system.jsonl at up to a hundred rows a second, unbounded.
MIN_SAMPLING_INTERVAL = 0.1


def _sampling_interval(v: Any) -> float:
    f = _float(v)
    if not MIN_SAMPLING_INTERVAL <= f < math.inf:  # NaN fails too
        raise ValueError("must be a finite number of seconds of at least "
                         f"{MIN_SAMPLING_INTERVAL:g}")
    return f


def _positive_int(v: Any) -> int:
    i = _int(v)
    if i < 1:
        raise ValueError("must be 1 or more")
    return i


def _opt_positive_int(v: Any) -> int | None:
    return None if v is None else _positive_int(v)


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError("expected a string")
    return v


def _text(v: Any) -> str:
    """A string kept as text (a name, notes): bytes that are not UTF-8, as a
    command line or environment can carry, cannot be written."""
    v = _str(v)
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("not valid UTF-8 text") from None
    return v


def _opt_str(v: Any) -> str | None:
    return None if v is None else _text(v)


def _opt_path(v: Any) -> str | None:
    """A path, where ``~`` is the home folder as in a shell."""
    return None if v is None else os.path.expanduser(_str(v))


def _choice(*choices: str, optional: bool = False) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        if v is None and optional:
            return None
        if not isinstance(v, str) or v not in choices:
            raise ValueError("expected one of " + ", ".join(choices))
        return v

    return check


def _seq(v: Any) -> tuple[Any, ...]:
    if isinstance(v, str):
        s = v.strip()
        if s.startswith("["):
            v = json.loads(s)
        else:
            return tuple(p.strip() for p in s.split(",") if p.strip())
    if isinstance(v, (list, tuple)):
        return tuple(v)
    raise ValueError("expected a list")


def _str_seq(v: Any) -> tuple[str, ...]:
    items = tuple(os.fspath(x) if isinstance(x, os.PathLike) else x for x in _seq(v))
    if not all(isinstance(x, str) for x in items):
        raise ValueError("expected a list of strings")
    return items


def _opt_paths(v: Any) -> tuple[str, ...] | None:
    return None if v is None else tuple(os.path.expanduser(p) for p in _str_seq(v))


def _int_seq(v: Any) -> tuple[int, ...] | None:
    return None if v is None else tuple(_int(x) for x in _seq(v))


def _opt_dict(v: Any) -> dict[str, Any] | None:
    if v is None:
        return None
    if isinstance(v, str):
        v = json.loads(v)
    if not isinstance(v, dict):
        raise ValueError("expected a mapping")
    return dict(v)


def _mode(v: Any) -> str:
    v = _str(v)
    aliases = {"dryrun": "offline", "run": "online"}
    v = aliases.get(v, v)
    if v not in ("online", "offline", "disabled", "shared"):
        raise ValueError("expected one of online, offline, disabled, shared")
    return v


def _reinit(v: Any) -> str:
    if isinstance(v, bool):  # deprecated boolean form, as the reference allows
        return "finish_previous" if v else "return_previous"
    return _choice("default", "return_previous", "finish_previous", "create_new")(v)


def _filters(v: Any) -> Any:
    """A list of regexes, or ``{metric regex: {label: value regex}}``; from the
    environment, JSON for either (a plain string is a comma-separated list)."""
    if isinstance(v, str) and v.strip().startswith("{"):
        v = json.loads(v)
    return v if v is None or isinstance(v, dict) else _seq(v)


def _tags(v: Any) -> tuple[str, ...] | None:
    if v is None:
        return None
    tags = _seq(v)  # a string: comma-separated (WBTOOL_RUN_TAGS=a,b) or a JSON list
    for t in tags:
        if not isinstance(t, str) or not 1 <= len(t) <= 64:
            raise ValueError(f"tag {t!r} must be 1 to 64 characters")
        if any(c < " " or c == "\x7f" for c in t):  # as an artifact's: listings break
            raise ValueError(f"tag {t!r} holds a control character")
        _text(t)
    return tuple(tags)


# name: (validator, default)
FIELDS: dict[str, tuple[Callable[[Any], Any], Any]] = {
    "allow_val_change": (_bool, False),
    "code_dir": (_opt_path, None),
    "config_paths": (_opt_paths, None),
    "console": (_choice("auto", "off", "wrap", "redirect", "wrap_raw", "wrap_emu"), "auto"),
    "disable_code": (_bool, False),
    "disable_git": (_bool, False),
    "entity": (_opt_str, None),
    "fork_from": (_opt_str, None),
    "git_commit": (_opt_str, None),
    "git_remote": (_str, "origin"),
    "git_remote_url": (_opt_str, None),
    "git_root": (_opt_path, None),
    "heartbeat_seconds": (_positive_int, 30),
    "host": (_opt_str, None),
    "ignore_globs": (_str_seq, ()),
    "max_end_of_run_history_metrics": (_int, 10),
    "max_end_of_run_summary_metrics": (_int, 10),
    "mode": (_mode, "offline"),
    "program": (_opt_str, None),
    "project": (_opt_str, None),
    "quiet": (_bool, False),
    "reinit": (_reinit, "default"),
    "resume": (_choice("allow", "must", "never", "auto", optional=True), None),
    "resume_from": (_opt_str, None),
    "root_dir": (_opt_path, None),
    "run_group": (_opt_str, None),
    "run_id": (_opt_str, None),
    "run_job_type": (_opt_str, None),
    "run_name": (_opt_str, None),
    "run_notes": (_opt_str, None),
    "run_tags": (_tags, None),
    "save_code": (_opt_bool, None),
    "settings_system": (_opt_path, None),
    "show_colors": (_opt_bool, None),
    "show_emoji": (_opt_bool, None),
    "show_errors": (_bool, True),
    "show_info": (_bool, True),
    "show_warnings": (_bool, True),
    "silent": (_bool, False),
    "strict": (_opt_bool, None),
    "summary_warnings": (_int, 5),
    "symlink": (_opt_bool, None),
    "x_disable_machine_info": (_bool, False),
    "x_disable_meta": (_bool, False),
    "x_disable_stats": (_bool, False),
    "x_files_dir": (_opt_path, None),
    "x_label": (_opt_str, None),
    "x_log_level": (_int, 20),
    "x_primary": (_bool, True),
    "x_save_requirements": (_bool, True),
    "x_start_time": (lambda v: None if v is None else _float(v), None),
    "x_stats_buffer_size": (_int, 0),
    "x_stats_cpu_count": (_opt_positive_int, None),
    "x_stats_cpu_logical_count": (_opt_positive_int, None),
    "x_stats_dcgm_exporter": (_opt_str, None),
    "x_stats_disk_paths": (_opt_paths, ("/",)),
    "x_stats_gpu_count": (_opt_int, None),
    "x_stats_gpu_device_ids": (_int_seq, None),
    "x_stats_gpu_type": (_opt_str, None),
    "x_stats_neuron_monitor_config_path": (_opt_path, None),
    "x_stats_open_metrics_endpoints": (_opt_dict, None),
    "x_stats_open_metrics_filters": (_filters, None),
    "x_stats_open_metrics_http_headers": (_opt_dict, None),
    "x_stats_pid": (_opt_positive_int, None),
    "x_stats_sampling_interval": (_sampling_interval, 2.0),
    "x_stats_track_process_tree": (_bool, False),
    "x_store_fsync": (_bool, True),
    "x_update_finish_state": (_bool, True),
}

# Settings of the reference that mean something only to a server (or to a
# feature that wbtool leaves out, such as launch jobs and sweeps). A script
# written for the reference may pass them: each is accepted, said once per
# process to be ignored, and not kept (an API key least of all).
SERVER_ONLY = frozenset((
    "allow_offline_artifacts", "anonymous", "api_key", "azure_account_url_to_access_key",
    "base_url", "console_multipart", "credentials_file", "disable_job_creation", "docker",
    "email", "force", "http_proxy", "https_proxy", "identity_token_file", "init_timeout",
    "insecure_disable_ssl", "job_name", "job_source", "label_disable", "launch",
    "launch_config_path", "login_timeout", "notebook_name", "organization",
    "program_abspath", "program_relpath", "relogin", "resumed", "sagemaker_disable",
    "start_method", "summary_timeout", "sweep_id", "sweep_param_path", "sync_tensorboard",
    "table_raise_on_max_row_limit_exceeded", "username", "x_cli_only_mode",
    "x_disable_viewer", "x_executable", "x_extra_http_headers", "x_file_stream_max_bytes",
    "x_file_stream_max_line_bytes", "x_file_stream_retry_max",
    "x_file_stream_retry_wait_max_seconds", "x_file_stream_retry_wait_min_seconds",
    "x_file_stream_timeout_seconds", "x_file_stream_transmit_interval",
    "x_file_transfer_retry_max", "x_file_transfer_retry_wait_max_seconds",
    "x_file_transfer_retry_wait_min_seconds", "x_file_transfer_timeout_seconds",
    "x_flow_control_custom", "x_flow_control_disabled", "x_graphql_retry_max",
    "x_graphql_retry_wait_max_seconds", "x_graphql_retry_wait_min_seconds",
    "x_graphql_timeout_seconds", "x_internal_check_process", "x_jupyter_name",
    "x_jupyter_path", "x_jupyter_root", "x_live_policy_rate_limit",
    "x_live_policy_wait_time", "x_network_buffer", "x_proxies", "x_runqueue_item_id",
    "x_server_side_derived_summary", "x_server_side_expand_glob_metrics",
    "x_service_transport", "x_service_wait", "x_skip_transaction_log",
    "x_stats_coreweave_metadata_base_url", "x_stats_coreweave_metadata_endpoint", "x_sync",
))
# What _validate gives for a setting of SERVER_ONLY: nothing to keep.
_IGNORED: Any = object()
_told_ignored: set[str] = set()

ENV_PREFIX = "WBTOOL_"
# Environment variables that are not settings (they name the store, a run…).
NON_SETTING_ENV = {"WBTOOL_DIR", "WBTOOL_RUN_ATTACH", "WBTOOL_CONSOLE_CAPTURED",
                   "WBTOOL_SETUP_SETTINGS"}


def _validate(name: str, value: Any) -> Any:
    spec = FIELDS.get(name)
    if spec is None:
        if name in SERVER_ONLY:
            _tell_ignored(name)
            return _IGNORED
        raise SettingsError(name=name, reason="unknown setting")
    try:
        return spec[0](value)
    except (ValueError, TypeError, json.JSONDecodeError) as e:
        raise SettingsError(name=name, reason=f"{value!r}: {e}") from None


def _tell_ignored(name: str) -> None:
    """Say once per process that the setting ``name`` of SERVER_ONLY is
    ignored, unless the environment asks for silence."""
    if name in _told_ignored:
        return
    _told_ignored.add(name)
    try:
        silent = _bool(os.environ.get(f"{ENV_PREFIX}SILENT") or False)
    except ValueError:
        silent = False
    if not silent:
        print(f"wbtool: WARNING setting {name!r} means something only to a server; ignored",
              file=sys.stderr)


class Settings:
    """Validated settings. Construct with keyword arguments, like the reference."""

    __slots__ = ("_frozen", "_run", "_sources", "_values")

    def __init__(self, **kwargs: Any) -> None:
        object.__setattr__(self, "_values", {})
        object.__setattr__(self, "_sources", {})
        object.__setattr__(self, "_frozen", False)
        # A run's settings: (its store folder, its folder, when it started).
        object.__setattr__(self, "_run", None)
        for name, value in kwargs.items():
            self._set(name, _validate(name, value), "argument")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self._values:
            return self._values[name]
        if name in FIELDS:
            return FIELDS[name][1]
        if name in SERVER_ONLY:
            return None  # never kept: it has no value here
        raise AttributeError(f"Settings has no setting {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if self._frozen:
            raise AttributeError("these settings are frozen (a run's settings are a copy)")
        self._set(name, _validate(name, value), "argument")

    def explicit(self) -> dict[str, Any]:
        """Only the values that were set (not defaults)."""
        return dict(self._values)

    def source(self, name: str) -> str:
        if name not in FIELDS:
            raise SettingsError(name=name, reason="unknown setting")
        return self._sources.get(name, "default")

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in sorted(FIELDS)}

    def update_from_dict(self, values: Mapping[str, Any], source: str = "argument") -> None:
        for name, value in values.items():
            self._set(name, _validate(name, value), source)

    def update_from_settings(self, settings: Settings) -> None:
        """Take the values that ``settings`` was given (not its defaults)."""
        if not isinstance(settings, Settings):
            raise SettingsError(name="settings", reason="expected a wbtool.Settings, not "
                                f"{type(settings).__name__}")
        for name, value in settings._values.items():
            self._set(name, value, settings._sources.get(name, "argument"))

    def update_from_env_vars(self, environ: Mapping[str, Any]) -> None:
        """Take the ``WBTOOL_*`` variables of ``environ``."""
        for name, value in env_settings(environ).items():
            self._set(name, _validate(name, value), f"env {ENV_PREFIX}{name.upper()}")

    def update_from_system_config_file(self) -> None:
        """Take the values of the system settings file (``settings_system``, or
        ``$XDG_CONFIG_HOME/wbtool/settings.yaml``)."""
        path = self.settings_system
        path = Path(path).expanduser() if path else system_settings_path(os.environ)
        self._update_from_file(path, "system file")

    def update_from_workspace_config_file(self) -> None:
        """Take the values of the store's ``settings.yaml``."""
        self._update_from_file(Path(self.settings_workspace), "workspace file")

    def update_from_system_environment(self) -> None:
        """Fill in the host and program, where they are not set, from this process."""
        if self.host is None:
            import socket

            self._set("host", socket.gethostname(), "system environment")
        if self.program is None:
            main = sys.modules.get("__main__")
            path = getattr(main, "__file__", None)
            if path and not path.startswith("<"):  # not "<stdin>"
                self._set("program", os.path.abspath(path), "system environment")

    def _update_from_file(self, path: Path, what: str) -> None:
        for name, value in _read_file(path).items():
            self._set(name, _validate(name, value), f"{what} {path}")

    def _set(self, name: str, value: Any, source: str) -> None:
        if self._frozen:
            raise AttributeError("these settings are frozen (a run's settings are a copy)")
        if value is _IGNORED:
            return
        self._values[name] = value
        self._sources[name] = source

    # -- paths and facts derived from the settings, as the reference has them ---------
    @property
    def wandb_dir(self) -> str:
        """The store folder (``.wbtool``) these settings lead to."""
        if self._run is not None:
            return self._run[0]
        from wbtool.store.layout import locate

        return str(locate(root_dir=self.root_dir)[0])

    @property
    def log_dir(self) -> str:
        """Where wbtool's own logs go (a background sync's output, for one)."""
        return os.path.join(self.wandb_dir, "logs")

    @property
    def sync_dir(self) -> str | None:
        """The run's folder; None before there is a run id."""
        if self._run is not None:
            return self._run[1]
        if not self.run_id:
            return None
        return os.path.join(self.wandb_dir, "runs", self.run_id)

    @property
    def files_dir(self) -> str | None:
        """The run's ``files/`` folder (``run.dir``); None before there is a run id."""
        folder = self.sync_dir
        return None if folder is None else os.path.join(folder, "files")

    @property
    def settings_workspace(self) -> str:
        return os.path.join(self.wandb_dir, "settings.yaml")

    @property
    def run_mode(self) -> str:
        return "run" if self.mode == "online" else "offline-run"

    @property
    def timespec(self) -> str | None:
        """When the run started, as ``YYYYmmdd_HHMMSS`` (local time)."""
        if self._run is None:
            return None
        import time

        return time.strftime("%Y%m%d_%H%M%S", time.localtime(self._run[2]))

    @property
    def run_url(self) -> str | None:
        folder = self.sync_dir
        return None if folder is None else Path(folder).resolve().as_uri()

    is_local = True
    deployment = "local"
    project_url = None
    sweep_url = None
    colab_url = None

    def frozen_copy(self) -> Settings:
        s = Settings()
        s._values.update(self._values)
        s._sources.update(self._sources)
        object.__setattr__(s, "_frozen", True)
        return s

    def _bind_run(self, store: str, folder: str, run_id: str, started_at: float) -> None:
        """Make these (frozen) settings a run's: its id, folder and start time."""
        self._values["run_id"] = run_id
        self._sources.setdefault("run_id", "the run")
        object.__setattr__(self, "_run", (store, folder, started_at))

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled and copied as they are (frozen, a run's): a worker process
        is handed its settings through pickle. The default way sets each slot
        through ``__setattr__``, which reads ``_frozen`` before it is there."""
        return (_rebuild, (dict(self._values), dict(self._sources), self._frozen, self._run))

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in sorted(self._values.items()))
        return f"Settings({shown})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Settings) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


def _rebuild(values: dict[str, Any], sources: dict[str, str], frozen: bool,
             run: tuple[str, str, float] | None) -> Settings:
    s = Settings()
    s._values.update(values)
    s._sources.update(sources)
    object.__setattr__(s, "_frozen", frozen)
    object.__setattr__(s, "_run", run)
    return s


def system_settings_path(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(
        environ.get("HOME", os.path.expanduser("~")), ".config"
    )
    return Path(base) / "wbtool" / "settings.yaml"


def _read_file(path: Path) -> dict[str, Any]:
    """The settings in the YAML file ``path``; none where it does not exist.
    What keeps it from being read is said in words, naming the file: a
    symbolic link that leads nowhere, in its place or in place of one of its
    folders, too, since whoever made it expects the file to apply."""
    import stat

    from wbtool import yamltext

    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return _absent(path)
    except OSError as e:
        raise _unreadable(path, e) from None
    if stat.S_ISDIR(mode):
        raise _file_error(path, "is a folder, not a file")
    if not stat.S_ISREG(mode):  # a pipe or a device: reading it might never end
        raise _file_error(path, "is not a regular file")
    try:
        doc = yamltext.load_file(path)
    except FileNotFoundError:  # removed in between
        return _absent(path)
    except OSError as e:
        raise _unreadable(path, e) from None
    except ValueError as e:
        raise _file_error(path, f"is {e}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise _file_error(path, "is not a mapping of setting: value")
    return doc


def _absent(path: Path) -> dict[str, Any]:
    """No settings, for a file that is not there; refused where a broken
    symbolic link stands in its place or in place of one of its folders."""
    broken = _broken_link(path)
    if broken is None:
        return {}
    link, target = broken
    if link == path:
        raise _file_error(path, f"is a broken symbolic link (to {target})")
    reason = f"{link} is a broken symbolic link (to {target})"
    raise SettingsError(f"cannot read settings file {path}: {reason}", name=str(path),
                        reason=reason)


def _broken_link(path: Path) -> tuple[Path, str] | None:
    """The symbolic link that leads nowhere in place of ``path`` or of one of
    its folders, and what it points to; None where ``path`` is simply absent
    (or there). Only called for a path found missing: it stops at the first
    folder up that exists."""
    for p in (path, *path.parents):
        if os.path.exists(p):
            return None
        if os.path.islink(p):
            try:
                return p, os.readlink(p)
            except OSError:  # removed or replaced in between
                return None
    return None


def _file_error(path: Path, problem: str) -> SettingsError:
    """``settings file PATH PROBLEM``, with the file as the setting it names."""
    return SettingsError(f"settings file {path} {problem}", name=str(path), reason=problem)


def _unreadable(path: Path, exc: OSError) -> SettingsError:
    """``cannot read settings file PATH: WHY``, in words: a folder on its way
    that is a file names that file; a refused permission or a loop of
    symbolic links is said as such."""
    import errno

    reason = exc.strerror or str(exc)
    reason = reason[:1].lower() + reason[1:]
    if exc.errno == errno.ENOTDIR:
        blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            reason = f"{blocker} is a file, not a folder"
    elif exc.errno == errno.ELOOP:
        reason = "its symbolic links form a loop"
    return SettingsError(f"cannot read settings file {path}: {reason}", name=str(path),
                         reason=reason)


def env_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX) or key in NON_SETTING_ENV or not value:
            continue  # an empty variable (WBTOOL_QUIET=$UNSET_VAR) is no setting, as unset
        name = key[len(ENV_PREFIX):]
        if name.isupper() and name.lower() in FIELDS:  # WBTOOL_PROJECT, not WBTOOL_project
            out[name.lower()] = value
    return out


def load(
    explicit: Settings | Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> Settings:
    """Resolve settings from every source, recording each value's origin."""
    from wbtool.store.layout import locate

    env = os.environ if environ is None else environ
    given = explicit.explicit() if isinstance(explicit, Settings) else dict(explicit or {})
    for name, value in list(given.items()):  # validate explicit values first
        given[name] = _validate(name, value)
        if given[name] is _IGNORED:
            del given[name]
    from_env = env_settings(env)

    override = given.get("settings_system") or from_env.get("settings_system")
    system_path = Path(override).expanduser() if override else system_settings_path(env)
    settings = Settings()
    settings.update_from_dict(_read_file(system_path), f"system file {system_path}")

    root_dir = given.get("root_dir") or from_env.get("root_dir") or settings.root_dir
    store_dir, found = locate(root_dir=root_dir, cwd=cwd, environ=env)
    if store_dir.exists() and not store_dir.is_dir():
        from wbtool.errors import UsageError

        raise UsageError(f"the wbtool store {store_dir} (from {found}) is a file, not a folder")
    if not store_dir.exists() and (broken := _broken_link(store_dir)) is not None:
        from wbtool.errors import UsageError

        link, target = broken
        where = "" if link == store_dir else f": {link}"
        raise UsageError(f"the wbtool store {store_dir} (from {found}){where} is a broken "
                         f"symbolic link (to {target})")
    workspace = store_dir / "settings.yaml"
    settings.update_from_dict(_read_file(workspace), f"workspace file {workspace}")
    for name, value in from_env.items():
        settings.update_from_dict({name: value}, f"env {ENV_PREFIX}{name.upper()}")
    settings.update_from_dict(given, "argument")
    return settings
