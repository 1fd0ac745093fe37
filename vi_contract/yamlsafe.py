"""YAML with its aliases bounded: PyYAML's SafeLoader builds an alias (`*name`) as one more
reference to its anchor's value, so nine lines of nested aliases (a "billion laughs") cost
nothing to load and everything to walk: checking, copying or printing such a value took
`vi-sweep validate` minutes and gigabytes and ended in a MemoryError. Every reader of a study
file (the writer's loader, the readers of a results folder's study.yaml) loads through
BoundedLoader, which counts what its aliases repeat as it composes and refuses the document,
at the alias's line, past MAX_REPEATED values or at an alias inside its own anchor.
"""

from __future__ import annotations

import yaml

MAX_REPEATED = 10_000  # values aliases may repeat in one document; a study file spells out a few at most


class BoundedLoader(yaml.SafeLoader):
    def __init__(self, stream):
        super().__init__(stream)
        self._sizes: dict[int, int] = {}  # id(node) -> the values it holds, aliases expanded (its children are alive)
        self._repeated = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            node = self.anchors.get(event.anchor)
            if node is not None:  # an unknown anchor: the composer says so
                self._count(node, event.start_mark)
            return super().compose_node(parent, index)
        node = super().compose_node(parent, index)
        children = ([n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode)
                    else node.value if isinstance(node, yaml.SequenceNode) else [])
        self._sizes[id(node)] = min(1 + sum(self._sizes.get(id(c), 1) for c in children), MAX_REPEATED + 1)
        return node

    def _count(self, node, mark) -> None:
        if id(node) not in self._sizes:  # still being composed: the alias sits inside its own anchor
            raise yaml.composer.ComposerError(None, None, "an alias inside its own anchor (a value that holds "
                                              "itself); spell the value out", mark)
        self._repeated += self._sizes[id(node)]
        if self._repeated > MAX_REPEATED:
            raise yaml.composer.ComposerError(None, None, f"aliases (*name) repeat more than {MAX_REPEATED:,} "
                                              "values; spell the values out", mark)


def safe_load(text: str):
    """yaml.safe_load with its aliases bounded (BoundedLoader)."""
    return yaml.load(text, Loader=BoundedLoader)  # noqa: S506 - a SafeLoader: no tag constructs an object
