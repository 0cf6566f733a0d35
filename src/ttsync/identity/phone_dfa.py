"""libphonenumber's regular expressions as deterministic automata over the digits 0-9.

The compiled phone kernel (_kernels.c, phone section) validates national numbers by walking these
tables: one array lookup per digit instead of an RE2 pass per pattern over the whole column. The
automata are built from Python's own parse of each pattern (`re._parser`), so they accept exactly
the digit strings `re` does; a pattern using anything outside the small subset libphonenumber's
metadata uses raises Unsupported, and the caller then keeps the RE2 path for that region.

Two kinds of automaton:
- full match (`full_match`): does the whole digit string match (phonenumbers' fullmatch)?
- prefix (`prefix_match`): where does `re.match` end (leftmost-first, as backtracking finds it)? The
  states are ordered thread lists, truncated after the first thread that matched, as RE2's DFA does
  for leftmost-first semantics.

Encoding (int32 words): [states, start, then 10 transitions per state, then one flag word per state];
state 0 is dead. Flag bit 0: a match ends here; bit 1: a match ends here if the input ends here.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Sequence
from functools import cache
from re import _parser
from typing import Any

ALL_DIGITS = (1 << 10) - 1
MAX_STATES = 50_000  # a table larger than this is not worth building: the caller keeps RE2
MATCH_HERE = 1
MATCH_AT_END = 2

# The digits in each 10-bit mask.
_DIGITS_OF = [tuple(d for d in range(10) if m >> d & 1) for m in range(1 << 10)]

# NFA node kinds
_CHAR, _SPLIT, _END, _MATCH = range(4)


class Unsupported(ValueError):
    """The pattern uses syntax this compiler does not translate (the caller keeps RE2)."""


class _Nfa:
    """A Thompson NFA over digits whose split nodes list their successors in priority order."""

    def __init__(self) -> None:
        self.kind: list[int] = []
        self.mask: list[int] = []
        self.out: list[list[int]] = []

    def node(self, kind: int, mask: int = 0, out: list[int] | None = None) -> int:
        self.kind.append(kind)
        self.mask.append(mask)
        self.out.append(out if out is not None else [])
        return len(self.kind) - 1

    def seq(self, items: Any, nxt: int) -> int:
        """Start node of the parsed items followed by node `nxt` (built back to front)."""
        for op, av in reversed(list(items)):
            nxt = self.item(str(op), av, nxt)
        return nxt

    def item(self, op: str, av: Any, nxt: int) -> int:
        if op == "LITERAL":
            char = chr(av)
            mask = 1 << int(char) if "0" <= char <= "9" else 0
            return self.node(_CHAR, mask, [nxt])
        if op == "ANY":
            return self.node(_CHAR, ALL_DIGITS, [nxt])
        if op == "IN":
            return self.node(_CHAR, _class_mask(av), [nxt])
        if op == "BRANCH":
            return self.node(_SPLIT, out=[self.seq(alt, nxt) for alt in av[1]])
        if op == "SUBPATTERN":
            _group, add_flags, del_flags, body = av
            if add_flags or del_flags:
                raise Unsupported("inline flags")
            return self.seq(body, nxt)
        if op in ("MAX_REPEAT", "MIN_REPEAT"):
            low, high, body = av
            greedy = op == "MAX_REPEAT"

            def choice(take: int, skip: int) -> list[int]:
                return [take, skip] if greedy else [skip, take]

            if high == _parser.MAXREPEAT:
                loop = self.node(_SPLIT)
                self.out[loop] = choice(self.seq(body, loop), nxt)
                cur = loop
            else:
                cur = nxt
                for _ in range(high - low):
                    cur = self.node(_SPLIT, out=choice(self.seq(body, cur), nxt))
            for _ in range(low):
                cur = self.seq(body, cur)
            return cur
        if op == "AT" and str(av) in ("AT_END", "AT_END_STRING"):
            return self.node(_END, out=[nxt])  # the inputs hold no newline: `$` is the end
        raise Unsupported(op)


def _class_mask(items: Any) -> int:
    mask = 0
    negate = False
    for op, av in items:
        name = str(op)
        if name == "LITERAL":
            char = chr(av)
            if "0" <= char <= "9":
                mask |= 1 << int(char)
        elif name == "RANGE":
            lo, hi = av
            for code in range(max(lo, ord("0")), min(hi, ord("9")) + 1):
                mask |= 1 << (code - ord("0"))
        elif name == "CATEGORY" and str(av) == "CATEGORY_DIGIT":
            mask = ALL_DIGITS
        elif name == "NEGATE":
            negate = True
        else:
            raise Unsupported(name)
    return ALL_DIGITS & ~mask if negate else mask


def _closure(nfa: _Nfa, starts: Sequence[int]) -> list[int]:
    """The non-split nodes reachable from `starts` through splits, first occurrence in priority order."""
    seen: set[int] = set()
    out: list[int] = []
    stack = list(reversed(starts))
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        if nfa.kind[n] == _SPLIT:
            stack.extend(reversed(nfa.out[n]))
        else:
            out.append(n)
    return out


def _matches_at_end(nfa: _Nfa, nodes: Sequence[int]) -> bool:
    """Whether a thread at one of `nodes` reaches the match once the input has ended (through `$`)."""
    todo = [n for n in nodes if nfa.kind[n] in (_END, _MATCH)]
    seen: set[int] = set()
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        if nfa.kind[n] == _MATCH:
            return True
        if nfa.kind[n] == _END:
            todo += [m for m in _closure(nfa, nfa.out[n]) if nfa.kind[m] in (_END, _MATCH)]
    return False


def _compile(pattern: str, ordered: bool) -> array[int]:
    nfa = _Nfa()
    try:
        parsed = _parser.parse(pattern)
    except re.error as exc:  # a pattern `re` cannot parse either: keep RE2
        raise Unsupported(str(exc)) from exc
    start = nfa.seq(parsed, nfa.node(_MATCH))
    kind, mask, out = nfa.kind, nfa.mask, nfa.out
    closures: dict[int, list[int]] = {}

    def closure_of(node: int) -> list[int]:
        found = closures.get(node)
        if found is None:
            found = closures[node] = _closure(nfa, [node])
        return found

    states: dict[tuple[int, ...], int] = {(): 0}
    order: list[tuple[int, ...]] = [()]

    def state_of(nodes: list[int]) -> int:
        if ordered:
            for i, n in enumerate(nodes):
                if kind[n] == _MATCH:  # lower-priority threads can never win: drop them
                    nodes = nodes[: i + 1]
                    break
            key = tuple(nodes)
        else:
            key = tuple(sorted(nodes))
        found = states.get(key)
        if found is None:
            if len(order) >= MAX_STATES:
                raise Unsupported("too many states")
            found = states[key] = len(order)
            order.append(key)
        return found

    first = state_of(closure_of(start))
    trans: list[int] = [0] * 10
    flags: list[int] = [0]
    i = 1
    while i < len(order):
        nodes = order[i]
        chars = [(mask[n], closure_of(out[n][0])) for n in nodes if kind[n] == _CHAR]
        # Digits taken by the same threads lead to the same state (a class like [2-9] covers several).
        by_threads: dict[tuple[int, ...], int] = {}
        takers: list[list[int]] = [[] for _ in range(10)]
        for k, (m, _) in enumerate(chars):
            for d in _DIGITS_OF[m]:
                takers[d].append(k)
        for d in range(10):
            taking = tuple(takers[d])
            target = by_threads.get(taking)
            if target is None:
                merged: list[int] = []
                seen: set[int] = set()
                for k in taking:
                    for n in chars[k][1]:
                        if n not in seen:
                            seen.add(n)
                            merged.append(n)
                target = by_threads[taking] = state_of(merged) if merged else 0
            trans.append(target)
        here = any(kind[n] == _MATCH for n in nodes)
        flags.append((MATCH_HERE if here else 0) | (MATCH_AT_END if _matches_at_end(nfa, nodes) else 0))
        i += 1
    return array("i", [len(order), first, *trans, *flags])


@cache
def full_match(pattern: str) -> array[int]:
    """Automaton of `pattern` for whole-string matches (flag MATCH_AT_END after the last digit).
    Shared between callers (regions repeat patterns): copy it, never modify it."""
    return _compile(pattern, ordered=False)


@cache
def prefix_match(pattern: str) -> array[int]:
    """Automaton of `pattern` for re.match: the last position whose state flags a match is where the
    leftmost-first match ends (MATCH_AT_END at the end of the input). Shared: never modify it."""
    return _compile(pattern, ordered=True)


def run_full(table: Sequence[int], digits: str) -> bool:
    """Whether the automaton accepts the whole digit string (the reference walk, for tests)."""
    state = table[1]
    for c in digits:
        state = table[2 + 10 * state + int(c)]
        if state == 0:
            return False
    return bool(table[2 + 10 * table[0] + state] & MATCH_AT_END)


def run_prefix(table: Sequence[int], digits: str) -> int | None:
    """Where re.match of the pattern ends in the digit string, or None (the reference walk, for tests)."""
    n_states = table[0]
    state = table[1]
    end = None
    for pos in range(len(digits) + 1):
        flag = table[2 + 10 * n_states + state]
        if flag & (MATCH_AT_END if pos == len(digits) else MATCH_HERE):
            end = pos
        if pos == len(digits):
            break
        state = table[2 + 10 * state + int(digits[pos])]
        if state == 0:
            break
    return end
