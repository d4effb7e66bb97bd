"""`@dataclass`, `field`, `replace`, `fields` and `asdict` for mlproj's own classes, without importing
the standard library's `dataclasses`.

Start-up matters (bench/startup.py): `import dataclasses` pulls in `inspect` and `ast`, and every class it
decorates compiles five or six methods with `exec`, which together cost more than the whole budget of
`mlproj status`. These classes behave as the standard library's do for what mlproj uses (frozen or not,
`default`, `default_factory`, `compare`, `repr`; no inheritance between them, no `__post_init__`), and
tests/test_structs.py checks them against it, side by side. The type checker sees the standard library's
own (below), so every class is checked as a true dataclass.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing's, not imported at run time (start-up)
if TYPE_CHECKING:
    from dataclasses import FrozenInstanceError, asdict, dataclass, field, fields, replace
else:
    _MISSING = object()
    _SCALARS = (str, int, float, bool, bytes, type(None))

    class FrozenInstanceError(AttributeError):
        """Assigning to a field of a frozen instance."""

    class Field:
        __slots__ = ("compare", "default", "default_factory", "name", "repr")

        def __init__(self, default, default_factory, *, compare, repr):
            if default is not _MISSING and default_factory is not _MISSING:
                raise ValueError("cannot specify both default and default_factory")
            self.name = ""
            self.default, self.default_factory = default, default_factory
            self.compare, self.repr = compare, repr

        def __repr__(self):
            return f"Field(name={self.name!r})"

    def field(*, default=_MISSING, default_factory=_MISSING, compare=True, repr=True):
        return Field(default, default_factory, compare=compare, repr=repr)

    def fields(class_or_instance):
        try:
            return class_or_instance.__struct_fields__
        except AttributeError:
            raise TypeError("must be called with a dataclass type or instance") from None

    def replace(obj, /, **changes):
        for spec in fields(obj):
            if spec.name not in changes:
                changes[spec.name] = obj.__dict__[spec.name]
        return obj.__class__(**changes)

    def asdict(obj):
        fields(obj)  # a TypeError for anything else, as the standard one
        return _asdict(obj)

    def _asdict(value):
        if type(value) in _SCALARS:
            return value
        specs = getattr(type(value), "__struct_fields__", None)
        if specs is not None:
            return {spec.name: _asdict(value.__dict__[spec.name]) for spec in specs}
        if isinstance(value, tuple) and hasattr(value, "_fields"):  # a named tuple
            return type(value)(*[_asdict(item) for item in value])
        if isinstance(value, (list, tuple)):
            return type(value)(_asdict(item) for item in value)
        if isinstance(value, dict):
            return type(value)((_asdict(key), _asdict(item)) for key, item in value.items())
        import copy

        return copy.deepcopy(value)

    def dataclass(cls=None, /, *, frozen=False):
        def wrap(cls):
            return _process(cls, frozen)

        return wrap if cls is None else wrap(cls)

    def _is_classvar(annotation):
        text = annotation if isinstance(annotation, str) else getattr(annotation, "__qualname__", "")
        return text.startswith(("ClassVar", "typing.ClassVar"))

    def _specs(cls):
        specs = []
        own = cls.__dict__.get("__annotations__", {})  # noqa: RUF063 - inspect is what this module avoids
        for name, annotation in own.items():
            if _is_classvar(annotation):
                continue
            default = cls.__dict__.get(name, _MISSING)
            plain = not isinstance(default, Field)
            spec = Field(default, _MISSING, compare=True, repr=True) if plain else default
            spec.name = name
            if isinstance(default, Field):  # the class keeps a plain default, as the standard one does
                if spec.default is _MISSING:
                    delattr(cls, name)
                else:
                    setattr(cls, name, spec.default)
            if spec.default is not _MISSING and type(spec.default).__hash__ is None:
                raise ValueError(
                    f"mutable default {type(spec.default)} for field {name} is not allowed: "
                    "use default_factory"
                )
            if specs and _has_default(specs[-1]) and not _has_default(spec):
                raise TypeError(f"non-default argument {name!r} follows default argument")
            specs.append(spec)
        return tuple(specs)

    class _StandardFields:
        """`__dataclass_fields__`, made on first use: code outside mlproj (a backend of another package,
        a test's assertion) may hand these instances to the standard `dataclasses.replace`, `fields`,
        `asdict` or `is_dataclass`, which read it. It is a true dataclass's, of the same fields."""

        def __init__(self, frozen):
            self.frozen = frozen

        def __get__(self, instance, owner):
            import dataclasses

            specs = [
                (spec.name, owner.__annotations__[spec.name], _standard_field(dataclasses, spec))
                for spec in owner.__struct_fields__
            ]
            twin = dataclasses.make_dataclass(owner.__name__, specs, frozen=self.frozen)
            owner.__dataclass_fields__ = twin.__dataclass_fields__  # this descriptor is done
            return twin.__dataclass_fields__

    def _standard_field(dataclasses, spec):
        if spec.default is not _MISSING:
            return dataclasses.field(default=spec.default, compare=spec.compare, repr=spec.repr)
        if spec.default_factory is not _MISSING:
            return dataclasses.field(
                default_factory=spec.default_factory, compare=spec.compare, repr=spec.repr
            )
        return dataclasses.field(compare=spec.compare, repr=spec.repr)

    def _init(cls, specs, names):
        setter = object.__setattr__

        def __init__(self, *args, **kwargs):
            if len(args) > len(specs):
                raise TypeError(
                    f"{cls.__name__}.__init__() takes {len(specs) + 1} positional arguments "
                    f"but {len(args) + 1} were given"
                )
            for index, spec in enumerate(specs):
                name = spec.name
                if index < len(args):
                    if name in kwargs:
                        raise TypeError(
                            f"{cls.__name__}.__init__() got multiple values for argument {name!r}"
                        )
                    value = args[index]
                elif name in kwargs:
                    value = kwargs[name]
                elif spec.default is not _MISSING:
                    value = spec.default
                elif spec.default_factory is not _MISSING:
                    value = spec.default_factory()
                else:
                    raise TypeError(f"{cls.__name__}.__init__() missing 1 required argument: {name!r}")
                setter(self, name, value)
            for name in kwargs:
                if name not in names:
                    raise TypeError(f"{cls.__name__}.__init__() got an unexpected keyword argument {name!r}")

        return __init__

    def _set(cls, name, method):
        if method is not None:
            method.__qualname__ = f"{cls.__qualname__}.{name}"
        setattr(cls, name, method)

    def _has_default(spec):
        return spec.default is not _MISSING or spec.default_factory is not _MISSING

    def _process(cls, frozen):
        specs = _specs(cls)
        methods = _methods(cls, specs)
        # A __hash__ written in the class is kept; `__eq__` written there sets it to None implicitly.
        class_hash = cls.__dict__.get("__hash__", _MISSING)
        explicit_hash = not (class_hash is _MISSING or (class_hash is None and "__eq__" in cls.__dict__))
        for name in ("__init__", "__repr__", "__eq__"):
            if name not in cls.__dict__:
                _set(cls, name, methods[name])
        if frozen:
            for name in ("__setattr__", "__delattr__"):
                if name in cls.__dict__:
                    raise TypeError(f"cannot overwrite attribute {name} in class {cls.__name__}")
                _set(cls, name, methods[name])
        if not explicit_hash:  # frozen: hashed by value; mutable: unhashable, as the standard ones
            _set(cls, "__hash__", methods["__hash__"] if frozen else None)
        cls.__struct_fields__ = specs
        cls.__dataclass_fields__ = _StandardFields(frozen)
        cls.__match_args__ = tuple(spec.name for spec in specs)
        return cls

    def _methods(cls, specs):
        names = frozenset(spec.name for spec in specs)
        compared = tuple(spec.name for spec in specs if spec.compare)
        shown = tuple(spec.name for spec in specs if spec.repr)

        def __repr__(self):
            shown_fields = ", ".join(f"{name}={self.__dict__[name]!r}" for name in shown)
            return f"{cls.__qualname__}({shown_fields})"

        def __eq__(self, other):
            if other.__class__ is not self.__class__:
                return NotImplemented
            mine, theirs = self.__dict__, other.__dict__
            return all(mine[name] == theirs[name] for name in compared)

        def __hash__(self):
            return hash(tuple(self.__dict__[name] for name in compared))

        def __setattr__(self, name, value):
            if type(self) is cls or name in names:
                raise FrozenInstanceError(f"cannot assign to field {name!r}")
            super(cls, self).__setattr__(name, value)

        def __delattr__(self, name):
            if type(self) is cls or name in names:
                raise FrozenInstanceError(f"cannot delete field {name!r}")
            super(cls, self).__delattr__(name)

        return {
            "__init__": _init(cls, specs, frozenset(spec.name for spec in specs)),
            "__repr__": __repr__,
            "__eq__": __eq__,
            "__hash__": __hash__,
            "__setattr__": __setattr__,
            "__delattr__": __delattr__,
        }


__all__ = ["FrozenInstanceError", "asdict", "dataclass", "field", "fields", "replace"]
