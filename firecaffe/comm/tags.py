"""Every message tag firecaffe sends, in one table, so that no two kinds of traffic mix.

Point-to-point messages on one communicator match by (source, tag): two kinds of message that
could be in flight together on the same communicator must never share a tag. A job runs one
strategy; the stall watchdog talks on a duplicate of the workers' communicator and the
timeline's clock ping-pongs run before the first step, so the ranges below only need to be
distinct within a strategy. Ranges end at the communicator's MPI_TAG_UB (topology.tag_bound).
"""
TREE_REDUCE = 11           # binomial tree, in-order loop: a child's sum going up
TREE_BCAST = 12            # ... and the total coming down
RING = 13                  # ring, plain loop: every Sendrecv
PS_PUSH = 21               # parameter server: a worker's gradient shard
PS_PULL = 22               # ... the updated weights (or the sum) going back
PS_STOP = 23               # ... a worker has finished (empty message)
PS_HISTORY = 24            # ... a server's shard of the solver history, before a snapshot
STALL_ARRIVAL = 31         # stall watchdog: a worker arrived at the reduction (its own communicator)
RING_STREAM_BASE = 64      # streamed ring: RING_STREAM_BASE + step * chunks per step + chunk
PIPELINE_BASE = 1000       # pipelined trees: PIPELINE_BASE + 4 * chunk + 2 * tree + direction
TIMELINE_TURN = 7101       # timeline clock offsets: rank 0 tells a peer it is its turn,
TIMELINE_PING = 7102       # ... the peer's ping,
TIMELINE_PONG = 7103       # ... rank 0's clock in answer
