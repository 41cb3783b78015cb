"""Records of the Faust worker's table (its changelog is ``topics.state``).

Keys: a monitor's ``[model, stage, variant]`` (as ``driftstream run``), and one
``\\x00offsets:N`` record per partition ``N`` (a Faust table is one keyspace over all
partitions, so the partition is in the key). Monitor values carry the input offsets their
snapshot covers: without transactions a crash can land between two records of one
checkpoint, leaving some monitors a checkpoint ahead of the others; on restore each monitor
then skips exactly the events its own snapshot already holds.

Monitor values are those of ``driftstream run`` (``state.monitor_value``).
"""

from __future__ import annotations

from .state import offsets_record as offsets_value  # the same record as ``driftstream run``'s
from .state import read_marks

__all__ = ["offsets_key", "offsets_value", "read_marks"]


def offsets_key(partition: int) -> bytes:
    """Table key of a partition's offsets record."""
    return b"\x00offsets:%d" % partition
