"""Read a pickled torch module (`torch.save(policy)`) without running its code or importing its classes.

    state_dict = read_pickled_state_dict(path)        # {key: torch.Tensor}, torch's own key order

The file is torch's zip layout: `<root>/data.pkl` plus one raw storage per `<root>/data/<key>`.
`find_class` admits only an allowlist (torch's tensor-rebuild functions, storage types and dtypes,
`collections.OrderedDict`, plain builtin containers); every other class becomes an inert stand-in
that keeps whatever state the pickle gives it, and is never imported. Functions cannot be
stand-ins: a global from the standard library that is not allowlisted (os.system, builtins.eval,
subprocess.Popen, ...) is refused as soon as the pickle names it, and a lower-case (function-like)
global of another package becomes a placeholder that refuses to be
called (so are torch's other names: a module may hold torch.relu as an attribute). The state dict
is then rebuilt from the module tree exactly as `nn.Module.state_dict`
does: each module's `_parameters`, then its `_buffers` minus `_non_persistent_buffers_set`, then
its `_modules` in order, keys joined with '.'.
"""

from __future__ import annotations

import _compat_pickle
import collections
import pickle
import sys
import zipfile
from pathlib import Path
from typing import Any

from jax_tx.io.metta.errors import MettaError, UnsafePickleError

STORAGE_DTYPES = {
    "FloatStorage": "float32",
    "DoubleStorage": "float64",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "UntypedStorage": "uint8",
}
TORCH_DTYPES = ("float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool")
TORCH_DTYPES += ("float", "double", "half", "long", "int", "short")
SAFE_BUILTINS = ("set", "frozenset", "list", "dict", "tuple", "object", "slice", "complex", "bytearray", "range")
SAFE_BUILTINS += ("int", "float", "str", "bool", "bytes")
# Harmless value classes of the standard library that configs carry; they become stand-ins (never imported).
STDLIB_VALUE_CLASSES = {
    "pathlib": ("Path", "PosixPath", "WindowsPath", "PurePath", "PurePosixPath", "PureWindowsPath"),
    "datetime": ("datetime", "date", "time", "timedelta", "timezone"),
    "decimal": ("Decimal",),
    "fractions": ("Fraction",),
    "uuid": ("UUID",),
    "collections": ("defaultdict", "deque", "Counter"),
    "functools": ("partial",),
    "types": ("SimpleNamespace",),
    "argparse": ("Namespace",),
}
# Lower-case names of other packages that only rebuild values (kept as stand-ins, never called for real).
VALUE_REBUILDERS = {
    "numpy.core.multiarray": ("_reconstruct", "scalar"),
    "numpy._core.multiarray": ("_reconstruct", "scalar"),
    "numpy": ("dtype", "ndarray"),
}


class StandIn:
    """An inert object in place of a class the pickle names: it only stores what it is given."""

    _class_path = "?"

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        obj.__dict__["_new_args"] = (args, kwargs)
        return obj

    def __init__(self, *args, **kwargs):
        if args or kwargs:
            self.__dict__["_init_args"] = (args, kwargs)

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2 and all(s is None or isinstance(s, dict) for s in state):
            for part in state:
                self.__dict__.update(part or {})
        elif isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self.__dict__["_state"] = state

    def __setitem__(self, key, value):  # dict subclasses are filled with SETITEMS
        self.__dict__.setdefault("_items", {})[key] = value

    def append(self, value):  # list subclasses are filled with APPENDS
        self.__dict__.setdefault("_list", []).append(value)

    def extend(self, values):
        self.__dict__.setdefault("_list", []).extend(values)

    def __repr__(self) -> str:
        return f"<stand-in for {self._class_path}>"


_STAND_INS: dict[str, type] = {}


def stand_in(module: str, name: str) -> type:
    """The (cached) stand-in class for `module.name`."""
    path = f"{module}.{name}"
    if path not in _STAND_INS:
        _STAND_INS[path] = type(name, (StandIn,), {"__module__": module, "_class_path": path})
    return _STAND_INS[path]


def refusing(path: str) -> type:
    """A placeholder for a function-like global: harmless as a value, refused when the pickle calls it."""

    def refuse(*args, **kwargs):
        raise UnsafePickleError(_unsafe_message(path))

    return type(path, (), {"__new__": refuse, "_class_path": path, "_refusing": True})


def _getattr(obj, name):
    """getattr as pickles use it (methods, functions stored as attributes): only on stand-ins and placeholders,
    and the result is again a placeholder, so no real attribute of a real object is ever reached."""
    base = getattr(obj, "_class_path", None)
    if base is None or not isinstance(name, str):
        raise UnsafePickleError(_unsafe_message(f"builtins.getattr on {type(obj).__name__}"))
    return refusing(f"{base}.{name}")


def _unsafe_message(path: str) -> str:
    return (
        f"the pickle calls {path}, which is not on the allowlist of tensor-rebuild functions and containers "
        f"(loading it with torch.load would run that code); not loaded. If the file is trusted, re-save its "
        f"weights with model.state_dict() in safetensors"
    )


class _StorageType:
    def __init__(self, name: str):
        self.name, self.dtype = name, STORAGE_DTYPES[name]


def _torch():
    import torch

    return torch


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    torch = _torch()
    if not isinstance(storage, torch.storage.TypedStorage):
        raise MettaError("the pickle rebuilds a tensor from something that is not a storage; the file is damaged")
    try:
        empty = torch.empty((0,), dtype=storage.dtype)
        return empty.set_(storage._untyped_storage, int(storage_offset), tuple(size), tuple(stride))
    except (RuntimeError, TypeError, ValueError) as e:
        raise MettaError(f"a tensor does not fit its storage ({e}); the file is truncated or damaged") from e


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    return data


def _rebuild_from_type_v2(func, new_type, args, state):
    if func not in (_rebuild_tensor_v2, _rebuild_parameter):
        raise UnsafePickleError(_unsafe_message(getattr(func, "_class_path", repr(func))))
    return func(*args)


def _codecs_encode(text, encoding="utf-8"):
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8"):
        raise UnsafePickleError(_unsafe_message("_codecs.encode"))
    return text.encode(encoding)


def _new_object(cls, *args, **kwargs):
    """copyreg.__newobj__ / _reconstructor: only stand-ins and plain containers may be created."""
    if isinstance(cls, type) and issubclass(cls, StandIn):
        return cls.__new__(cls, *args, **kwargs)
    if cls in (collections.OrderedDict, dict, list, set, object):
        return cls()
    raise UnsafePickleError(_unsafe_message(f"copyreg (creating {getattr(cls, '__name__', cls)!r})"))


def _reconstructor(cls, base, state):
    obj = _new_object(cls)
    if state is not None and isinstance(obj, StandIn):
        obj.__dict__["_state"] = state
    return obj


def _safe_global(module: str, name: str) -> Any | None:
    """The allowlisted object for module.name, or None."""
    if module == "torch._utils" and name == "_rebuild_tensor_v2":
        return _rebuild_tensor_v2
    if module == "torch._utils" and name in ("_rebuild_parameter", "_rebuild_parameter_with_state"):
        return _rebuild_parameter
    if module == "torch._tensor" and name == "_rebuild_from_type_v2":
        return _rebuild_from_type_v2
    if module in ("torch", "torch.storage") and name in STORAGE_DTYPES:
        return _StorageType(name)
    if module == "torch" and name in TORCH_DTYPES:
        return getattr(_torch(), name)
    if (module, name) in (("torch", "device"), ("torch", "Size"), ("torch.nn.parameter", "Parameter")):
        return getattr(_torch() if name != "Parameter" else _torch().nn.parameter, name)
    if module == "collections" and name == "OrderedDict":
        return collections.OrderedDict
    if module == "builtins" and name in SAFE_BUILTINS:
        return getattr(__import__("builtins"), name)
    if module == "builtins" and name == "getattr":
        return _getattr
    if module == "_codecs" and name == "encode":
        return _codecs_encode
    if module == "copyreg" and name in ("__newobj__", "__newobj_ex__"):
        return _new_object
    if module == "copyreg" and name == "_reconstructor":
        return _reconstructor
    return None


def resolve_global(module: str, name: str) -> Any:
    """What `find_class(module, name)` gives: an allowlisted object, a stand-in, or UnsafePickleError."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    safe = _safe_global(module, name)
    if safe is not None:
        return safe
    top, path = module.split(".")[0], f"{module}.{name}"
    if top == "torch":
        if (module.startswith("torch.nn.") or module == "torch.utils.hooks") and name[:1].isupper():
            return stand_in(module, name)  # nn.Linear, nn.ModuleList, ...: only their stored state is read
        return refusing(path)  # e.g. torch.relu stored as an attribute: a value here, refused if called
    if top in sys.stdlib_module_names or top in ("__builtin__", "copy_reg"):
        if name in STDLIB_VALUE_CLASSES.get(module, ()):
            return stand_in(module, name)
        raise UnsafePickleError(_unsafe_message(path))
    if name[:1].isupper() or name in VALUE_REBUILDERS.get(module, ()):
        return stand_in(module, name)
    return refusing(path)


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, load_storage):
        super().__init__(file)
        self._load_storage = load_storage

    def find_class(self, module, name):
        return resolve_global(module, name)

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise MettaError(f"unexpected persistent id {pid!r:.80} in the pickle; not a torch.save file")
        _, storage_type, key, _location, numel = pid[:5]
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str):
            raise MettaError("a storage record of the pickle is malformed; the file is damaged")
        return self._load_storage(storage_type, key, int(numel))


def _data_pickle_name(names: list[str], path: Path) -> str:
    found = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
    if len(found) != 1:
        raise MettaError(
            f"{path} is a zip but not a torch.save archive (no single <root>/data.pkl); pass the Metta .pt file"
        )
    return found[0]


def load_pickle(path: Path) -> Any:
    """The object pickled in the torch.save zip at `path`, through the restricted unpickler."""
    torch = _torch()
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise MettaError(
            f"cannot read {path} as a torch.save zip ({e}); the file is truncated, or a legacy (pre-1.6) torch "
            f"file: re-save it with a current torch"
        ) from e
    with archive:
        names = archive.namelist()
        data_pkl = _data_pickle_name(names, path)
        root = data_pkl[: -len("data.pkl")]
        if f"{root}byteorder" in names and archive.read(f"{root}byteorder").strip() not in (b"little", b""):
            raise MettaError(f"{path} was saved on a big-endian machine; re-save it on a little-endian one")
        storages: dict[str, Any] = {}

        def load_storage(storage_type: _StorageType, key: str, numel: int):
            if key not in storages:
                dtype = getattr(torch, storage_type.dtype)
                try:
                    raw = archive.read(f"{root}data/{key}")
                except (KeyError, zipfile.BadZipFile, OSError) as e:
                    raise MettaError(
                        f"storage {key} of {path} is missing or damaged ({e}); the file is truncated"
                    ) from e
                itemsize = torch.empty((), dtype=dtype).element_size()
                if len(raw) != numel * itemsize:
                    raise MettaError(f"storage {key} of {path} holds {len(raw)} bytes, not {numel * itemsize}; damaged")
                flat = torch.frombuffer(bytearray(raw), dtype=dtype) if raw else torch.empty((0,), dtype=dtype)
                storages[key] = torch.storage.TypedStorage(
                    wrap_storage=flat.untyped_storage(), dtype=dtype, _internal=True
                )
            return storages[key]

        try:
            with archive.open(data_pkl) as f:
                return _Unpickler(f, load_storage).load()
        except MettaError:
            raise
        except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError, TypeError, AttributeError) as e:
            raise MettaError(
                f"cannot unpickle {path} ({type(e).__name__}: {e}); the file is truncated or damaged"
            ) from e


def module_state_dict(module: Any) -> dict[str, Any]:
    """nn.Module.state_dict() of a pickled module tree of stand-ins (parameters, persistent buffers, children)."""
    out: dict[str, Any] = {}

    def walk(m: Any, prefix: str) -> None:
        d = getattr(m, "__dict__", {})
        skip = d.get("_non_persistent_buffers_set") or set()
        for name, value in (d.get("_parameters") or {}).items():
            if value is not None:
                out[prefix + name] = value
        for name, value in (d.get("_buffers") or {}).items():
            if value is not None and name not in skip:
                out[prefix + name] = value
        for name, child in (d.get("_modules") or {}).items():
            if child is not None:
                walk(child, f"{prefix}{name}.")

    walk(module, "")
    return out


def _is_module(obj: Any) -> bool:
    return isinstance(obj, StandIn) and isinstance(obj.__dict__.get("_modules"), dict)


def object_tree(obj: Any, depth: int = 12) -> Any:
    """The pickled object's plain attributes as nested data (tensors left out): a stand-in becomes
    {"class_path": ..., attribute: value, ...} with its child modules under their names, so sizes that
    the weights do not show (heads, memory length) can be looked up like an architecture string."""
    torch = _torch()
    if depth == 0 or isinstance(obj, torch.Tensor):
        return None
    if isinstance(obj, StandIn):
        d = obj.__dict__
        out: dict[str, Any] = {"class_path": obj._class_path}
        for k, v in d.items():
            if k not in ("_parameters", "_buffers", "_modules") and not k.startswith("_new_args"):
                out.setdefault(k.lstrip("_") or k, object_tree(v, depth - 1))
        for k, v in (d.get("_modules") or {}).items():
            out.setdefault(k, dict(object_tree(v, depth - 1) or {}, name=k))
        return out
    if isinstance(obj, dict):
        return {k: object_tree(v, depth - 1) for k, v in obj.items() if isinstance(k, (str, int))}
    if isinstance(obj, (list, tuple)):
        return [object_tree(v, depth - 1) for v in obj]
    return obj if isinstance(obj, (int, float, str, bool, type(None))) else None


def read_pickled_state_dict(path: Path) -> tuple[dict[str, Any], str, Any]:
    """(state dict, class path of the pickled root module, object_tree of it) of a `torch.save(policy)` file."""
    torch = _torch()
    obj = load_pickle(path)
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return dict(obj), "state_dict", None
    if not _is_module(obj):
        raise MettaError(
            f"{path} does not hold a pickled torch module (found {type(obj).__name__}); pass a Metta checkpoint "
            f"written by torch.save(policy)"
        )
    state = module_state_dict(obj)
    if not state:
        raise MettaError(f"{path} holds a module without parameters; pass a trained Metta policy checkpoint")
    return state, obj._class_path, object_tree(obj)
