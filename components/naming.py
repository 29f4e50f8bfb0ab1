"""How twinlab names what it creates: everything of stack S is `twinlab-S-...`, so a stack's
leftovers are found by that prefix (scripts/leftovers.py) and clones by theirs. In a stack with
several hosts (`twinlab:hosts`) everything on host H is `twinlab-S-H-...`: two "hosts" that are
one machine behind two SSH endpoints never share a name, and the stack's prefix still finds
all of it."""

from __future__ import annotations

PROJECT = "twinlab"


def stack_prefix(stack: str, host: str | None = None) -> str:
    """The prefix of every container, volume, domain, pool and clone of `stack` (on `host`, in
    a stack with several hosts)."""
    return f"{PROJECT}-{stack}" if host is None else f"{PROJECT}-{stack}-{host}"


def resource_name(stack: str, suffix: str, host: str | None = None) -> str:
    """twinlab-STACK-SUFFIX, e.g. the container twinlab-dev-app or the domain twinlab-dev-vm;
    twinlab-STACK-HOST-SUFFIX on one host of several."""
    return f"{stack_prefix(stack, host)}-{suffix}"


def host_scope(stack: str, host: str | None) -> str:
    """What stands for the stack in the names of things on `host`: STACK, or STACK-HOST in a
    stack with several hosts (the checks name their clones and budgets with it)."""
    return stack if host is None else f"{stack}-{host}"


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
