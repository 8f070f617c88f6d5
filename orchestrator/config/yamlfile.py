"""Read a YAML config file into a mapping, with errors that name the file."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Union

import yaml

from orchestrator.errors import ExitCode, OrchError


class _UniqueKeys(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping: YAML keeps the last one
    silently, so `steps: 100` ... `steps: 5` further down ran with 5 and nothing said so."""


def _mapping(loader: _UniqueKeys, node: yaml.MappingNode, deep: bool = False) -> Dict:
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            first = seen.setdefault(key, key_node.start_mark.line + 1)
        except TypeError:  # an unhashable key: the constructor below says so
            continue
        if first != key_node.start_mark.line + 1:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"key {key!r} is given twice (first on line {first}): YAML would keep the second silently",
                key_node.start_mark,
            )
    return loader.construct_mapping(node, deep=deep)


_UniqueKeys.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def read_mapping(path: Path, label: Union[str, Path, None] = None, text: Optional[str] = None) -> Dict:
    """PATH's mapping (TEXT: its contents, already read); a key given twice is an error."""
    label = label or path
    try:
        data = yaml.load(path.read_text() if text is None else text, Loader=_UniqueKeys) or {}
    except yaml.YAMLError as exc:
        hint = "keep one of the two" if "given twice" in str(exc) else None
        raise OrchError(f"{label}: not valid YAML: {exc}", ExitCode.CONFIG, hint=hint) from None
    except OSError as exc:
        raise OrchError(f"{label}: cannot read: {exc.strerror}", ExitCode.CONFIG) from None
    except UnicodeDecodeError as exc:
        raise OrchError(
            f"{label}: not UTF-8 text (byte {exc.start}: {exc.object[exc.start : exc.start + 1]!r})",
            ExitCode.CONFIG,
            hint="a config file is YAML saved as UTF-8 text",
        ) from None
    if not isinstance(data, dict):
        raise OrchError(f"{label}: expected a mapping of keys at the top level", ExitCode.CONFIG)
    return data
