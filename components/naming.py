"""How twinlab names what it creates: everything of stack S is `twinlab-S-...`, so a stack's
leftovers are found by that prefix (scripts/leftovers.py) and clones by theirs."""

from __future__ import annotations

PROJECT = "twinlab"


def stack_prefix(stack: str) -> str:
    """The prefix of every container, volume, domain, pool and clone of `stack`."""
    return f"{PROJECT}-{stack}"


def resource_name(stack: str, suffix: str) -> str:
    """twinlab-STACK-SUFFIX, e.g. the container twinlab-dev-app or the domain twinlab-dev-vm."""
    return f"{stack_prefix(stack)}-{suffix}"


def clone_prefix(stack: str) -> str:
    """Clones made by the resource checks (R1, R4): twinlab-STACK-clone-N."""
    return resource_name(stack, "clone-")


def stack_of(instance_name: str, suffixes: tuple[str, ...]) -> str | None:
    """The stack of an instance named twinlab-STACK-SUFFIX for one of `suffixes`, else None."""
    head = f"{PROJECT}-"
    for suffix in suffixes:
        tail = f"-{suffix}"
        if instance_name.startswith(head) and instance_name.endswith(tail):
            stack = instance_name[len(head) : -len(tail)]
            if stack:
                return stack
    return None
